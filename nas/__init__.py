"""magic-nas: weight-sharing neural architecture search with MAGIC-T / MAGIC-A super-net training.

The package reads as the data flow, one concern package per stage (see docs/design.md):
:mod:`nas.supernet` (the space base class; built-in spaces in :mod:`nas.spaces`) ->
:mod:`nas.tasks` -> :mod:`nas.train` -> :mod:`nas.evaluate` -> :mod:`nas.searching` (built-in
searchers in :mod:`nas.searchers`) -> :mod:`nas.child` -> :mod:`nas.analysis` -> :mod:`nas.report`,
with :mod:`nas.cli` on top. The names below are loaded on first use, so ``import nas`` (and
``nas --help``) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from nas._errors import NasUsageError
from nas._registry import (
    ESTIMATORS,
    SEARCHERS,
    SPACES,
    Registry,
    get_estimator,
    get_searcher,
    get_space,
    list_estimators,
    list_searchers,
    list_spaces,
    register_estimator,
    register_searcher,
    register_space,
)

__version__ = "0.1.0"

# name -> the package that exports it (imported on first access: PEP 562).
_LAZY = {
    "Arch": "nas.supernet",
    "Child": "nas.supernet",
    "Choice": "nas.supernet",
    "Cost": "nas.supernet",
    "SearchSpace": "nas.supernet",
    "Slot": "nas.supernet",
    "TASKS": "nas.tasks",
    "Task": "nas.tasks",
    "get_task": "nas.tasks",
    "list_tasks": "nas.tasks",
    "register_task": "nas.tasks",
    "Evaluator": "nas.evaluate",
    "TableEvaluator": "nas.evaluate",
    "ZeroCostEstimator": "nas.evaluate",
    "ZeroCostEvaluator": "nas.evaluate",
    "Claim": "nas.searching",
    "Searcher": "nas.searching",
    "SearchResult": "nas.searching",
    "search": "nas.searching",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nas' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Arch",
    "Child",
    "Choice",
    "Claim",
    "Cost",
    "ESTIMATORS",
    "Evaluator",
    "NasUsageError",
    "Registry",
    "SEARCHERS",
    "SPACES",
    "SearchResult",
    "SearchSpace",
    "TASKS",
    "Task",
    "Searcher",
    "Slot",
    "TableEvaluator",
    "ZeroCostEstimator",
    "ZeroCostEvaluator",
    "get_estimator",
    "get_searcher",
    "get_space",
    "get_task",
    "list_tasks",
    "register_task",
    "list_estimators",
    "list_searchers",
    "list_spaces",
    "register_estimator",
    "register_searcher",
    "register_space",
    "search",
    "__version__",
]
