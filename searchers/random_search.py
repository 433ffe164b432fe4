"""Random search: uniform over the feasible archs, without repeats (the baseline every NAS paper needs)."""

from __future__ import annotations

from nas import Arch, Searcher, register_searcher


@register_searcher("random")
class RandomSearch(Searcher):
    """Uniform random sampling of feasible archs, never proposing one twice."""

    def ask(self) -> Arch | None:
        # Sampling without replacement: a repeat would be answered from the cache for free, so
        # drawing a new arch instead gives the budget's worth of distinct archs.
        return self.sample_unseen()
