"""Searching a space: the searcher base class, the driver (budget, constraints, objectives,
persistence, workers) and the output folder's log. Built-in searchers live in :mod:`nas.searchers`."""

from nas.searching._driver import (
    Constraints,
    Objective,
    SearchResult,
    pareto_front,
    parse_objectives,
    search,
)
from nas.searching._out import OUT_FILES, SearchOut, plot_best_so_far, plot_pareto
from nas.searching._searcher import (
    OWN,
    Claim,
    Searcher,
    check_options,
    parse_option_value,
    parse_options,
    redact_url,
    searcher_options,
)

__all__ = [
    "Claim",
    "Constraints",
    "OUT_FILES",
    "OWN",
    "Objective",
    "SearchOut",
    "SearchResult",
    "Searcher",
    "check_options",
    "pareto_front",
    "parse_objectives",
    "parse_option_value",
    "parse_options",
    "plot_best_so_far",
    "plot_pareto",
    "redact_url",
    "search",
    "searcher_options",
]
