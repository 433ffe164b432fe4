"""magic-nas: weight-sharing neural architecture search with MAGIC-T / MAGIC-A super-net training."""

from ._errors import NasUsageError
from ._registry import (
    SEARCHERS,
    SPACES,
    Registry,
    get_searcher,
    get_space,
    list_searchers,
    list_spaces,
    register_searcher,
    register_space,
)
from ._searcher import Claim, Searcher
from ._search import Evaluator, SearchResult, search
from ._search_table import TableEvaluator
from ._space import Arch, Child, Choice, Cost, SearchSpace, Slot
from .tasks import TASKS, Task, get_task, list_tasks, register_task

__version__ = "0.1.0"

__all__ = [
    "Arch",
    "Child",
    "Choice",
    "Claim",
    "Cost",
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
    "get_searcher",
    "get_space",
    "get_task",
    "list_tasks",
    "register_task",
    "list_searchers",
    "list_spaces",
    "register_searcher",
    "register_space",
    "search",
    "__version__",
]
