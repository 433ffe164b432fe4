"""``hill-climb``: a searcher that mutates the best arch found so far (a plugin example).

A searcher owns only its strategy: the driver handles the budget, duplicates, constraints,
persistence and progress, and keeps ``self.seen`` (arch -> score) up to date.
"""

from nas import Searcher


class HillClimb(Searcher):
    """Start from random archs, then always mutate the best one seen so far."""

    def __init__(self, space, seed=0, feasible=None, maximize=True, directions=None, warmup: int = 5,
                 **options):
        super().__init__(space, seed, feasible, maximize, directions, **options)
        self.warmup = warmup
        self.best = None
        self.best_score = None

    def ask(self):
        if self.best is None or len(self.seen) < self.warmup:
            return self.sample_unseen()
        for _ in range(100):
            arch = self.space.mutate(self.best, self.rng, k=1)
            if arch not in self.seen and self.feasible(arch):
                return arch
        return self.sample_unseen()

    def tell(self, arch, score, result=None):
        if score is None:
            return
        better = self.best_score is None or (score > self.best_score if self.maximize else score < self.best_score)
        if better:
            self.best, self.best_score = tuple(arch), score
