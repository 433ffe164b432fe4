"""The searcher interface: a strategy that proposes archs (ask) and learns from results (tell).

The search driver owns the budget, de-duplication (an arch seen before is answered from its cache),
constraints, persistence and progress; a searcher owns only its strategy (as Optuna's BaseSampler).
"""

from __future__ import annotations

import abc
import random
from typing import Any, Callable

from ._space import Arch, SearchSpace


class Searcher(abc.ABC):
    """Base class of searchers; register subclasses with ``@register_searcher("name")``.

    ``feasible(arch) -> bool`` is the driver's constraint check; searchers should only propose
    feasible archs (resample rather than penalise). ``maximize`` gives the direction of ``score``.
    """

    name: str = ""

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        feasible: Callable[[Arch], bool] | None = None,
        maximize: bool = True,
        **options: Any,
    ):
        self.space = space
        self.seed = seed
        self.rng = random.Random(seed)
        self.feasible = feasible or (lambda arch: True)
        self.maximize = maximize
        if options:
            raise TypeError(f"searcher '{self.name}' takes no option(s) {', '.join(options)}")

    @abc.abstractmethod
    def ask(self) -> Arch:
        """Propose the next arch to evaluate."""

    def tell(self, arch: Arch, score: float, result: dict[str, Any] | None = None) -> None:
        """Report the score of an arch proposed by :meth:`ask` (or answered from the cache)."""

    def sample_feasible(self, max_tries: int = 10_000) -> Arch:
        """A uniformly sampled arch that meets the constraints."""
        for _ in range(max_tries):
            arch = self.space.sample(self.rng)
            if self.feasible(arch):
                return arch
        from ._errors import NasUsageError

        raise NasUsageError(
            f"no arch of space '{self.space.name}' met the constraints in {max_tries} samples; "
            "loosen --max-params / --max-macs"
        )
