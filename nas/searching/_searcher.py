"""The searcher interface: a strategy that proposes archs (ask) and learns from results (tell).

The search driver (:func:`nas.search`) owns the budget, de-duplication (an arch seen before is
answered from its cache, never re-evaluated), constraints, persistence and progress; a searcher owns
only its strategy, like Optuna's ``BaseSampler``. Searchers that share work with other processes
(the Optuna searcher on a shared storage) also implement the coordination hooks :meth:`claim`,
:meth:`sync` and :meth:`shared_used`; the defaults describe a searcher working alone.
"""

from __future__ import annotations

import abc
import inspect
import itertools
import random
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from nas._errors import NasUsageError
from nas._words import parse_bool
from nas.supernet._space import Arch, SearchSpace

_BASE_ARGS = ("self", "space", "seed", "feasible", "maximize", "directions")


@dataclass(frozen=True)
class Claim:
    """The answer of :meth:`Searcher.claim`: may this worker evaluate the arch now?

    ``own``: yes. ``done``: another worker already evaluated it (``record`` holds the result).
    ``busy``: another worker is evaluating it now. ``full``: the shared budget is taken.
    """

    status: str
    record: dict[str, Any] | None = None


OWN = Claim("own")


class Searcher(abc.ABC):
    """Base class of searchers; register subclasses with ``@register_searcher("name")``.

    ``feasible(arch) -> bool`` is the driver's constraint check: searchers should only propose
    feasible archs (resample rather than penalise). ``maximize`` is the direction of ``score`` (the
    first objective); ``directions`` lists ``"maximize"``/``"minimize"`` for every objective.
    ``seen`` maps every arch the driver has told this searcher about to its score; the driver keeps
    it up to date before calling :meth:`tell`, so searchers can avoid proposing known archs.
    Extra keyword arguments of a subclass' ``__init__`` are its options (``--searcher-opt k=v``).
    """

    name: str = ""

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        feasible: Callable[[Arch], bool] | None = None,
        maximize: bool = True,
        directions: Sequence[str] | None = None,
        **options: Any,
    ):
        self.space = space
        self.seed = seed
        self.rng = random.Random(seed)
        self.feasible = feasible or (lambda arch: True)
        self.maximize = maximize
        self.directions = tuple(directions or ("maximize" if maximize else "minimize",))
        self.seen: dict[Arch, float] = {}
        if options:
            raise NasUsageError(
                f"searcher '{self.name}' has no option(s) {', '.join(sorted(options))}; "
                f"its options: {', '.join(searcher_options(type(self))) or '(none)'}"
            )

    # ---- strategy -----------------------------------------------------------------------------
    @abc.abstractmethod
    def ask(self) -> Arch | None:
        """Propose the next arch to evaluate (None: nothing new left to propose)."""

    def tell(self, arch: Arch, score: float, record: dict[str, Any] | None = None) -> None:
        """Report the score of an arch (evaluated now, or an earlier result when resuming)."""

    def tell_cached(self, arch: Arch, score: float, record: dict[str, Any] | None = None) -> None:
        """:meth:`ask` proposed an arch evaluated before; here is its cached score."""
        self.tell(arch, score, record)

    def reject(self, arch: Arch, reason: str) -> None:
        """:meth:`ask` proposed an arch that will not be evaluated (``reason``: ``infeasible``)."""

    def better(self, a: float, b: float) -> bool:
        """Is score ``a`` strictly better than ``b``?"""
        return a > b if self.maximize else a < b

    # ---- output folder ------------------------------------------------------------------------
    @classmethod
    def defaults_for_out(cls, out: Any) -> dict[str, Any]:
        """Option defaults that depend on the search's ``--out`` folder (e.g. a storage kept there);
        options given explicitly win."""
        return {}

    # ---- coordination with other workers (defaults: working alone) ----------------------------
    @classmethod
    def shares_work(cls, options: dict[str, Any]) -> bool:
        """Can several processes run this searcher, with these options, on one shared state?"""
        return False

    def claim(self, arch: Arch, budget: int) -> Claim:
        """Called before evaluating a new arch; see :class:`Claim`."""
        return OWN

    def sync(self) -> list[dict[str, Any]]:
        """Records other workers finished since the last call (the driver adds them to its cache)."""
        return []

    def shared_used(self) -> int | None:
        """Budget used by all workers (finished + in progress), or None when working alone."""
        return None

    def close(self) -> None:
        """Release resources (storages, threads); called once when the search ends."""

    def pareto(self) -> list[str] | None:
        """Canonical arch strings of the Pareto front if the searcher tracks it, else None."""
        return None

    # ---- helpers ------------------------------------------------------------------------------
    def sample_feasible(self, max_tries: int = 10_000) -> Arch:
        """A uniformly sampled arch that meets the constraints."""
        from nas.report._progress import LazyProgress

        with LazyProgress("sampling a child within the constraints", max_tries) as bar:
            for _ in range(max_tries):
                arch = self.space.sample(self.rng)
                if self.feasible(arch):
                    return arch
                bar.advance()
        raise NasUsageError(
            f"no arch of space '{self.space.name}' met the constraints in {max_tries} samples; "
            "loosen --max-params / --max-macs"
        )

    def sample_unseen(self, max_tries: int = 2_000) -> Arch | None:
        """A uniformly sampled feasible arch not in :attr:`seen`; None when none is left.

        Rejection sampling first; when that keeps hitting seen archs in a small space, enumerate it.
        """
        from nas.report._progress import LazyProgress

        with LazyProgress("sampling a new child within the constraints", max_tries) as bar:
            for _ in range(max_tries):
                arch = self.space.sample(self.rng)
                if arch not in self.seen and self.feasible(arch):
                    return arch
                bar.advance()
        if self.space.size > 200_000:
            return None
        rest = []
        with LazyProgress("listing the unseen children within the constraints", self.space.size) as bar:
            for a in itertools.product(*(s.options for s in self.space.slots)):
                if a not in self.seen and self.feasible(a):
                    rest.append(a)
                bar.advance()
        return self.rng.choice(rest) if rest else None


def redact_url(text: str, url: str | None = None) -> str:
    """``text`` with the password of a database URL hidden (``user:***@host``): in ``text`` itself
    when it is a URL, and wherever the password of ``url`` appears in it."""
    import re

    if not isinstance(text, str):
        return text
    password = None
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url if url is not None else text)
        password = parsed.password
        if url is None and password:
            return parsed.render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL sqlalchemy reads: fall back to the pattern
        pass
    text = re.sub(r"(://[^:/@\s]+):[^@\s]*@", r"\1:***@", text)
    if password:
        text = text.replace(str(password), "***")
    return text


def searcher_options(cls: type) -> dict[str, Any]:
    """A searcher class' options and their defaults (its ``__init__`` keywords beyond the base)."""
    options: dict[str, Any] = {}
    for klass in cls.__mro__:
        if klass is Searcher or klass is object or "__init__" not in vars(klass):
            continue
        for p in inspect.signature(klass.__init__).parameters.values():
            if p.name not in _BASE_ARGS and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                options.setdefault(p.name, p.default)
    return options


def check_options(cls: type, options: dict[str, Any]) -> None:
    """Unknown options -> one clear error (classes taking ``**kwargs`` check their own)."""
    if not isinstance(cls, type):
        return  # a plugin registered as a plain factory function checks its own arguments
    params = inspect.signature(cls.__init__).parameters.values()
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return
    known = searcher_options(cls)
    bad = sorted(set(options) - set(known))
    if bad:
        raise NasUsageError(
            f"searcher '{getattr(cls, 'name', cls.__name__)}' has no option(s) {', '.join(bad)}; "
            f"its options: {', '.join(known) or '(none)'}"
        )


def parse_option_value(text: str, default: Any = None) -> Any:
    """Convert ``--searcher-opt`` text to the type of the option's default (guessed when None)."""
    low = text.lower()
    if isinstance(default, bool) or (default is None and not low.isdigit() and parse_bool(low) is not None):
        value = parse_bool(low)
        if value is None:
            raise NasUsageError(f"expected true or false, got '{text}'")
        return value
    if default is None and low in ("none", "null"):
        return None
    kinds = {int: (int,), float: (float,), str: (str,)}.get(type(default), (int, float, str))
    for kind in kinds:
        try:
            return kind(text)
        except ValueError:
            pass
    raise NasUsageError(f"expected {'an integer' if kinds == (int,) else 'a number'}, got '{text}'")


def parse_options(pairs: Sequence[str], known: dict[str, Any] | None = None, what: str = "option") -> dict[str, Any]:
    """``["population=20", "crossover=0.5"]`` -> ``{"population": 20, "crossover": 0.5}``."""
    known = known or {}
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise NasUsageError(f"{what} '{pair}' is not KEY=VALUE; write e.g. population=20")
        try:
            options[key] = parse_option_value(value.strip(), known.get(key))
        except NasUsageError as exc:
            raise NasUsageError(f"{what} {key}: {exc}") from None
    return options
