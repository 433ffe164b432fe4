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
from ._searcher import Searcher
from ._space import Arch, Child, Choice, Cost, SearchSpace, Slot

__version__ = "0.1.0"

__all__ = [
    "Arch",
    "Child",
    "Choice",
    "Cost",
    "NasUsageError",
    "Registry",
    "SEARCHERS",
    "SPACES",
    "SearchSpace",
    "Searcher",
    "Slot",
    "get_searcher",
    "get_space",
    "list_searchers",
    "list_spaces",
    "register_searcher",
    "register_space",
    "__version__",
]
