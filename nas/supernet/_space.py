"""The search-space abstraction: ordered slots with named options, and weight-sharing super-nets.

An arch is a tuple of option tokens, one per slot; its canonical text is the tokens joined by commas.
A super-net holds every option of every slot as a :class:`Choice`; a child is the same network built
with only the chosen option per slot (``build_supernet(only=arch)``), so its state-dict keys are a
subset of the super-net's and weight inheritance is a plain state-dict copy.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, Sequence

import torch
from torch import nn

from nas._errors import NasUsageError

Arch = tuple  # tuple[str, ...]: one option token per slot, in slot order


@dataclass(frozen=True)
class Slot:
    """One decision of the space: a name and its option tokens."""

    name: str
    options: tuple[str, ...]


@dataclass(frozen=True)
class Cost:
    params: int  # the whole child as built for the preset, head included
    backbone_params: int  # without the task head
    macs: int  # multiply-accumulates of one example, = FLOPs / 2 from torch.utils.flop_counter


class Choice(nn.Module):
    """The options of one slot; runs the option named by the arch's token."""

    def __init__(self, options: dict[str, nn.Module]):
        super().__init__()
        self.ops = nn.ModuleDict(options)

    def forward(self, x: Any, token: str, *args: Any, **kwargs: Any) -> Any:
        return self.ops[token](x, *args, **kwargs)


class Child(nn.Module):
    """A standalone child: the super-net built with one option per slot, run with a fixed arch."""

    def __init__(self, net: nn.Module, arch: Arch):
        super().__init__()
        self.net = net
        self.arch = tuple(arch)

    @property
    def head(self) -> nn.Module:
        return self.net.head

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.net(*args, arch=self.arch, **kwargs)


class SearchSpace:
    """Base class of search spaces. Subclasses set ``name``, ``presets`` and implement ``_build``.

    Subclasses provide:
      * ``presets``: preset name -> dataclass instance (``tiny`` for CPU tests, ``base`` paper scale);
      * ``_make_slots()`` -> list of :class:`Slot`;
      * ``_build(only, num_outputs, head)`` -> the super-net ``nn.Module`` with attributes ``head``
        (the task head module), ``num_outputs`` and ``head_type``, and
        ``forward(x, arch, return_hidden=False, **kw)`` returning logits, or ``(logits, hiddens)``
        (a list of per-layer tensors) with ``return_hidden``; it builds only ``only``'s options
        when given. ``head`` is ``"classification"`` (``num_outputs=1`` for regression) or a
        space-specific head such as ``"mlm"``;
      * ``example_input(batch_size)`` -> (args tuple, kwargs dict) for cost measurement;
      * optionally ``named_archs()`` -> {name: canonical arch string}.
    """

    name: ClassVar[str] = ""
    presets: ClassVar[dict[str, Any]] = {}
    has_batchnorm: ClassVar[bool] = False  # evaluation recalibrates BN statistics per child
    default_task: ClassVar[str | None] = None  # embedded task used when --task is not given
    # DeepSpeed settings (e.g. the optimizer) this space trains with when --ds-config is not
    # given; merged key by key over the default config. None: the default config as it is.
    default_ds_config: ClassVar[dict[str, Any] | None] = None
    # A space that can also be searched against a table of trained results (``--table``).
    tabular: ClassVar[bool] = False
    # The table's params/MACs per arch, once :meth:`set_table_costs` was given them (tabular spaces).
    table_costs: dict[Arch, Cost] | None = None

    def __init__(self, preset: str = "tiny", **overrides: Any):
        if preset not in self.presets:
            raise NasUsageError(
                f"unknown preset '{preset}' for space '{self.name}'; "
                f"choose from: {', '.join(self.presets)}"
            )
        self.preset = preset
        config = self.presets[preset]
        if overrides:
            from nas._words import check_known

            check_known(overrides, {f.name for f in dataclasses.fields(config)}, "option(s)",
                        f" for space '{self.name}'")
            config = dataclasses.replace(config, **overrides)
        self.config = config
        self.slots: list[Slot] = list(self._make_slots())
        self._cost_cache: dict[Arch, Cost] = {}

    # ---- to implement -------------------------------------------------------------------------
    def _make_slots(self) -> Sequence[Slot]:
        raise NotImplementedError

    def _build(self, only: Arch | None, num_outputs: int | None, head: str) -> nn.Module:
        raise NotImplementedError

    def example_input(self, batch_size: int = 1) -> tuple[tuple, dict]:
        raise NotImplementedError

    def named_archs(self) -> dict[str, str]:
        return {}

    # ---- arch algebra -------------------------------------------------------------------------
    @cached_property
    def size(self) -> int:
        """Number of distinct children."""
        return math.prod(len(s.options) for s in self.slots)

    def encode(self, arch: Sequence[str]) -> str:
        return ",".join(arch)

    def _decode_tokens(self, text: str) -> list[str]:
        return [t.strip() for t in text.split(",")]

    def parse(self, arch: str | Sequence[str]) -> Arch:
        """Canonical arch tuple from text, a named arch, or a token sequence; checks membership."""
        if isinstance(arch, str):
            text = arch.strip()
            named = self.named_archs()
            if text in named:
                text = named[text]
            tokens = self._decode_tokens(text)
        else:
            tokens = list(arch)
        if len(tokens) != len(self.slots):
            hint = f"; named archs: {', '.join(self.named_archs())}" if self.named_archs() else ""
            raise NasUsageError(
                f"arch '{arch if isinstance(arch, str) else self.encode(tokens)}' has {len(tokens)} "
                f"token(s) but space '{self.name}' (preset {self.preset}) has {len(self.slots)} slots "
                f"({', '.join(s.name for s in self.slots)}); give one option per slot, comma-joined"
                f"{hint}"
            )
        for slot, token in zip(self.slots, tokens):
            if token not in slot.options:
                raise NasUsageError(
                    f"slot '{slot.name}' has no option '{token}'; "
                    f"choose from: {', '.join(slot.options)}"
                )
        return tuple(tokens)

    def sample(self, rng: random.Random) -> Arch:
        return tuple(rng.choice(s.options) for s in self.slots)

    def mutate(self, arch: Sequence[str], rng: random.Random, k: int = 1) -> Arch:
        """Change exactly ``k`` slots, each to a different option."""
        arch = list(self.parse(arch))
        mutable = [i for i, s in enumerate(self.slots) if len(s.options) > 1]
        if not 0 <= k <= len(mutable):
            raise ValueError(f"cannot change {k} slots: only {len(mutable)} slots have a choice")
        for i in rng.sample(mutable, k):
            arch[i] = rng.choice([o for o in self.slots[i].options if o != arch[i]])
        return tuple(arch)

    def distance(self, a: Sequence[str], b: Sequence[str]) -> int:
        """Number of slots in which two archs differ."""
        return sum(x != y for x, y in zip(self.parse(a), self.parse(b)))

    # ---- networks -----------------------------------------------------------------------------
    def build_supernet(
        self,
        num_outputs: int | None = None,
        only: Sequence[str] | None = None,
        head: str = "classification",
    ) -> nn.Module:
        """The weight-sharing super-net (every option of every slot, or only ``only``'s)."""
        return self._build(self.parse(only) if only is not None else None, num_outputs, head)

    def build_child(
        self, arch: Sequence[str], num_outputs: int | None = None, head: str = "classification"
    ) -> Child:
        """A freshly initialised standalone child (no super-net needed)."""
        arch = self.parse(arch)
        return Child(self._build(arch, num_outputs, head), arch)

    def child(self, supernet: nn.Module, arch: Sequence[str]) -> Child:
        """The child ``arch`` with its weights (and buffers) copied from ``supernet``."""
        arch = self.parse(arch)
        child = Child(self._build(arch, supernet.num_outputs, supernet.head_type), arch)
        source = supernet.state_dict()
        target = child.net.state_dict()
        missing = [k for k in target if k not in source]
        if missing:
            raise ValueError(f"super-net lacks weights for {missing[:3]}... of arch {self.encode(arch)}")
        child.net.load_state_dict({k: source[k].detach().clone() for k in target})
        child.train(supernet.training)
        return child

    def slot_modules(self, net: nn.Module) -> list[Choice]:
        """The :class:`Choice` module of each slot, in slot order (override if registration order
        differs from slot order)."""
        choices = [m for m in net.modules() if isinstance(m, Choice)]
        if len(choices) != len(self.slots):
            raise ValueError(f"found {len(choices)} Choice modules for {len(self.slots)} slots")
        return choices

    def cost(self, arch: Sequence[str]) -> Cost:
        """Parameters and MACs of a child, measured with ``torch.utils.flop_counter``."""
        from torch.utils.flop_counter import FlopCounterMode

        arch = self.parse(arch)
        if arch not in self._cost_cache:
            child = self.build_child(arch).eval()
            params = sum(p.numel() for p in child.parameters())
            head = sum(p.numel() for p in child.head.parameters())
            args, kwargs = self.example_input(1)
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                child(*args, **kwargs)
            self._cost_cache[arch] = Cost(params, params - head, counter.get_total_flops() // 2)
        return self._cost_cache[arch]

    # ---- hooks with defaults (override in a space) ---------------------------------------------
    def set_table_costs(self, costs: Any) -> None:
        """A table evaluator hands over the table's costs ({arch: Cost}, or None when the table has
        no cost columns). A tabular space uses them as :meth:`cost`; others ignore them."""

    def activation_modules(self, net: nn.Module) -> list[nn.Module]:
        """Modules whose output's sign is the network's activation pattern (zero-cost estimators
        such as ``naswot`` read it): by default every ReLU, ReLU6, GELU, SiLU and LeakyReLU module.
        A space that applies its activation functionally overrides this with the modules that feed
        it (for ReLU-like activations the pre-activation's sign is the pattern)."""
        kinds = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.LeakyReLU)
        return [m for m in net.modules() if isinstance(m, kinds)]

    def input_embedding(self, net: nn.Module) -> nn.Module | None:
        """The module that turns discrete inputs (token ids) into the first continuous tensor, for
        estimators that differentiate with respect to the input (``jacov``) or feed a constant
        one (``synflow``); None when the input is already continuous (images)."""
        return None

    def export_extra(self, child: Child, arch: Arch, out: Any) -> dict[str, str]:
        """``nas export``: write the space's own formats of ``child`` into the folder ``out``
        (beside ``model.safetensors`` and ``model.pt2``) and return {role: file name}."""
        return {}

    def describe(self) -> dict[str, Any]:
        return {
            "space": self.name,
            "preset": self.preset,
            "size": self.size,
            "slots": [{"name": s.name, "options": list(s.options)} for s in self.slots],
            "named_archs": self.named_archs(),
            "config": dataclasses.asdict(self.config),
        }
