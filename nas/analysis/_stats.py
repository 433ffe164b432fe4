"""Rank correlations with bootstrap confidence intervals (scipy.stats), and top-k overlap."""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
from scipy import stats


def _kendall(x, y):
    return stats.kendalltau(x, y).statistic


def _spearman(x, y):
    return stats.spearmanr(x, y).statistic


def _pearson(x, y):
    return stats.pearsonr(x, y).statistic


def top_k_overlap(estimate: Sequence[float], truth: Sequence[float], k: int) -> float:
    """Fraction of the true top-k that the estimate also puts in its top-k."""
    k = max(1, min(k, len(truth)))
    top_est = set(np.argsort(-np.asarray(estimate), kind="stable")[:k])
    top_true = set(np.argsort(-np.asarray(truth), kind="stable")[:k])
    return len(top_est & top_true) / k


def top_k_regret(estimate: Sequence[float], truth: Sequence[float], k: int) -> float:
    """What a searcher trusting the estimate loses: the best true value among the estimate's top-k,
    subtracted from the best true value of all (0 = the estimate's top-k holds the optimum).

    Children tied at the top-k boundary are picked at random: the regret is its expectation over
    the ways to break the tie (exact), so an estimator that scores every child alike (a super-net
    stuck on a loss plateau) gets the regret of a random pick, not whatever child comes first."""
    k = max(1, min(k, len(truth)))
    truth, estimate = np.asarray(truth, float), np.asarray(estimate, float)
    boundary = np.sort(estimate)[::-1][k - 1]
    above = truth[estimate > boundary]
    tied = np.sort(truth[estimate == boundary])[::-1]  # best first
    m, n = k - len(above), len(tied)  # m of the n tied children make the top-k
    best_above = above.max() if len(above) else -np.inf
    # P(the best picked tied child is the j-th best of them) = C(n - j, m - 1) / C(n, m)
    expected = sum(math.comb(n - j, m - 1) / math.comb(n, m) * max(best_above, tied[j - 1])
                   for j in range(1, n - m + 2))
    return float(truth.max() - expected)


def bootstrap_ci(statistic: Callable, x: Sequence[float], y: Sequence[float], seed: int = 0,
                 n_resamples: int = 1000, level: float = 0.95) -> tuple[float, float]:
    """Paired percentile bootstrap interval of ``statistic(x, y)``."""
    if len(x) < 4:
        return (float("nan"), float("nan"))
    import warnings

    with warnings.catch_warnings():  # resamples with ties make some statistics undefined
        warnings.simplefilter("ignore")
        res = stats.bootstrap((np.asarray(x, float), np.asarray(y, float)), statistic, paired=True,
                              vectorized=False, n_resamples=n_resamples, confidence_level=level,
                              method="percentile", rng=np.random.default_rng(seed))
    return (float(res.confidence_interval.low), float(res.confidence_interval.high))


def _none_if_nan(x: float) -> float | None:
    return None if x != x else float(x)


def ranking_report(estimate: Sequence[float], truth: Sequence[float], k: int = 5, seed: int = 0,
                   n_resamples: int = 1000) -> dict[str, Any]:
    """Kendall tau, Spearman rho, Pearson r and top-k overlap, each with a 95% bootstrap CI.
    A correlation that is undefined (constant estimates or ground truth) is ``None``."""
    out: dict[str, Any] = {}
    constant = len(set(estimate)) < 2 or len(set(truth)) < 2
    for name, fn in (("kendall_tau", _kendall), ("spearman", _spearman), ("pearson", _pearson)):
        if constant:
            out[name], out[f"{name}_ci"] = None, [None, None]
            continue
        out[name] = _none_if_nan(fn(estimate, truth))
        out[f"{name}_ci"] = [_none_if_nan(v) for v in bootstrap_ci(fn, estimate, truth, seed, n_resamples)]
    topk = lambda x, y: top_k_overlap(x, y, k)  # noqa: E731
    out[f"top{k}_overlap"] = top_k_overlap(estimate, truth, k)
    out[f"top{k}_overlap_ci"] = list(bootstrap_ci(topk, estimate, truth, seed, n_resamples))
    for j in sorted({1, k}):
        out[f"top{j}_regret"] = top_k_regret(estimate, truth, j)
    return out


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and a t-distribution confidence interval."""
    v = np.asarray(values, float)
    m = float(v.mean()) if len(v) else float("nan")
    if len(v) < 2:
        return m, float("nan"), float("nan")
    lo, hi = stats.t.interval(level, len(v) - 1, loc=m, scale=stats.sem(v))
    return m, float(lo), float(hi)
