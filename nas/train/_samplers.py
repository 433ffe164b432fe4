"""Which child trains at each step: uniform (SPOS), gradual (MAGIC-T), or one fixed arch.

Samplers keep their own ``random.Random`` so a checkpoint's ``state_dict`` resumes the exact
sequence of children.
"""

from __future__ import annotations

import random
from typing import Any

from .._space import Arch, SearchSpace


class ArchSampler:
    def __init__(self, space: SearchSpace, seed: int):
        self.space = space
        self.rng = random.Random(seed)
        self.current: Arch | None = None

    def next(self) -> Arch:
        self.current = self._next()
        return self.current

    def _next(self) -> Arch:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.getstate(), "current": list(self.current) if self.current else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.current = tuple(state["current"]) if state["current"] else None


class UniformSampler(ArchSampler):
    """Each step an independent uniformly sampled child (the SPOS baseline)."""

    def _next(self) -> Arch:
        return self.space.sample(self.rng)


class GradualSampler(ArchSampler):
    """MAGIC-T: each child differs from the previous one in exactly one slot."""

    def _next(self) -> Arch:
        if self.current is None:
            return self.space.sample(self.rng)
        return self.space.mutate(self.current, self.rng, k=1)


class FixedSampler(ArchSampler):
    """Standalone (re)training of one child."""

    def __init__(self, space: SearchSpace, seed: int, arch: Arch):
        super().__init__(space, seed)
        self.arch = space.parse(arch)

    def _next(self) -> Arch:
        return self.arch


def make_sampler(mode: str, space: SearchSpace, seed: int, arch: Arch | None = None) -> ArchSampler:
    if arch is not None:
        return FixedSampler(space, seed, arch)
    return GradualSampler(space, seed) if mode in ("magic-t", "magic-at") else UniformSampler(space, seed)
