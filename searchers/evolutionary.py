"""Regularized (aging) evolution, Real et al. 2019, "Regularized Evolution for Image Classifier
Architecture Search", with two changes that matter when evaluations are expensive:

* a child that was evaluated before (or is infeasible) is never proposed: the parent is mutated
  again, the tournament rerun, the mutation widened, and only then is a random new arch drawn;
* the defaults were chosen by measurement on the NAS-Bench-201 12-epoch table
  (``python benchmarks/searchers.py --tune``, 300 seeds, CIFAR-10/100 and ImageNet16 test columns):
  a population of 25 whose tournament is the whole population (always mutate the best of the 25
  youngest) beat every smaller tournament and the setting used for this benchmark in the
  literature (population 10, tournament 3) at budgets 50-300. Aging still removes old champions,
  so the search keeps moving instead of stalling on one hill.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from nas import Arch, NasUsageError, Searcher, register_searcher

_ATTEMPTS = 50  # mutations tried per proposal before widening the search


@register_searcher("evolutionary")
class RegularizedEvolution(Searcher):
    """Aging evolution: tournament selection, one-slot mutation, optional crossover, no repeats.

    Options: ``population`` (archs alive at once; the first ones are random), ``tournament``
    (contestants per parent selection; default the whole population), ``crossover`` (probability
    that a child mixes two tournament winners slot by slot before mutating), ``mutations`` (slots
    changed per child).
    """

    def __init__(self, space, seed=0, feasible=None, maximize=True, directions=None,
                 population: int = 25, tournament: int | None = None, crossover: float = 0.0, mutations: int = 1):
        super().__init__(space, seed, feasible, maximize, directions)
        tournament = population if tournament is None else tournament
        if population < 1 or not 1 <= tournament <= population:
            raise NasUsageError(
                f"evolutionary needs population >= 1 and 1 <= tournament <= population, got "
                f"population={population}, tournament={tournament}"
            )
        if not 0.0 <= crossover <= 1.0:
            raise NasUsageError(f"crossover is a probability in [0, 1], got {crossover}")
        n_mutable = sum(len(s.options) > 1 for s in space.slots)
        if not 1 <= mutations <= max(n_mutable, 1):
            raise NasUsageError(f"mutations must be between 1 and {n_mutable} (slots with a choice)")
        self.population_size = population
        self.tournament_size = tournament
        self.crossover = crossover
        self.mutations = mutations
        self.population: deque[tuple[Arch, float]] = deque()

    def _fitness(self, member: tuple[Arch, float]) -> float:
        score = member[1]
        if score is None or not math.isfinite(score):
            return -math.inf
        return score if self.maximize else -score

    def _tournament(self) -> Arch:
        contestants = self.rng.sample(list(self.population), min(self.tournament_size, len(self.population)))
        return max(contestants, key=self._fitness)[0]

    def _new(self, arch: Arch) -> bool:
        return arch not in self.seen and self.feasible(arch)

    def _child(self, k: int) -> Arch:
        parent = self._tournament()
        if self.crossover and self.rng.random() < self.crossover:
            other = self._tournament()
            parent = tuple(self.rng.choice(pair) for pair in zip(parent, other))
        return self.space.mutate(parent, self.rng, k)

    def ask(self) -> Arch | None:
        if len(self.population) < self.population_size:
            return self.sample_unseen()
        n_mutable = sum(len(s.options) > 1 for s in self.space.slots)
        for k in range(self.mutations, n_mutable + 1):
            for _ in range(_ATTEMPTS):
                child = self._child(k)
                if self._new(child):
                    return child
        return self.sample_unseen()

    def tell(self, arch: Arch, score: float, record: dict[str, Any] | None = None) -> None:
        self.population.append((tuple(arch), score))
        if len(self.population) > self.population_size:
            self.population.popleft()  # aging: the oldest dies, however good
