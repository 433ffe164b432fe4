"""The evaluator interface the search driver uses, with its hooks' defaults.

Subclass :class:`Evaluator` (the super-net and table evaluators do); the driver also accepts any
object with ``space``, ``primary_metric``, ``greater_is_better`` and ``evaluate`` and reads the
hooks it lacks from this class through :func:`evaluator_hook`.
"""

from __future__ import annotations

import types
from typing import Any, ClassVar, Sequence

from nas.supernet._space import Arch, SearchSpace


class Evaluator:
    """Scores children of ``space``: ``evaluate(arch) -> {metric: value}``."""

    space: SearchSpace
    primary_metric: str
    greater_is_better: bool = True
    # Metric names ``evaluate`` returns (objectives are checked against them); None: not known.
    metric_names: ClassVar[Sequence[str] | None] = None
    # The super-net run the scores come from (None: not a run, e.g. a table).
    run_dir: Any = None

    def evaluate(self, arch: Arch) -> dict[str, float]:
        raise NotImplementedError

    def evaluate_many(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        return [self.evaluate(a) for a in archs]

    def describe(self) -> dict[str, Any]:
        """Where the scores come from (written to the search's settings)."""
        return {}


def evaluator_hook(evaluator: Any, name: str) -> Any:
    """``evaluator.<name>``; for an object that does not subclass :class:`Evaluator`, the base
    class's default where it lacks the hook."""
    if isinstance(evaluator, Evaluator) or hasattr(evaluator, name):
        return getattr(evaluator, name)
    default = getattr(Evaluator, name)
    return types.MethodType(default, evaluator) if isinstance(default, types.FunctionType) else default
