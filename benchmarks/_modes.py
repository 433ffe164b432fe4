"""What the mode-comparison harnesses share (nb201.py against a table, bert_modes.py against a
standalone ground truth): run names, lanes with a deadline, and the paired statistics of a mode
table -- each MAGIC mode against uniform over the same seeds, with a bootstrap and a Student-t 95%
interval and the paired t-test p with Holm's adjustment over the modes compared."""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable

MODES = ("uniform", "magic-t", "magic-a", "magic-at")


def run_name(mode: str, steps: int, seed: int, tag: str) -> str:
    return f"{mode}-steps{steps}-seed{seed}" + (f"-{tag}" if tag else "")


def run_tag(run_name: str, seed: int) -> str:
    """The recipe tag of a run folder named by :func:`run_name` ('' for the default recipe)."""
    return run_name.split(f"seed{seed}", 1)[1].lstrip("-")


def regrets(children: list[dict]) -> tuple[float, float]:
    """Top-1 and top-5 regret of a rank.json's children (estimate vs ground_truth), recomputed with
    the current ``top_k_regret`` (ties broken at random in expectation) rather than read from a
    cached rank.json written before it did so."""
    from nas.analysis import top_k_regret

    est = [c["estimate"] for c in children]
    truth = [c["ground_truth"] for c in children]
    return top_k_regret(est, truth, 1), top_k_regret(est, truth, 5)


def group_rows(rows: list[dict]) -> dict:
    """Rows (one per ranked super-net) by (tag, steps), then by mode: one mode table per group."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["tag"], r["steps"]), {}).setdefault(r["mode"], []).append(r)
    return groups


def parse_seeds(text: str) -> list[int]:
    """``--seeds`` (an argparse type, so a bad value is a usage error, exit 2): a count (5: seeds
    0-4) or a list (0,3,4)."""
    try:
        seeds = [int(s) for s in text.split(",") if s] if "," in text else list(range(int(text)))
    except ValueError:
        seeds = []
    if not seeds:
        raise argparse.ArgumentTypeError(f"{text} selects no seed: give a count (1: seed 0) or a list (0,3,4)")
    return seeds


def left(args) -> float | None:
    """Seconds until --deadline (None without one)."""
    return None if args.deadline is None else args.deadline_at - time.time()


_seconds: dict[str, list[float]] = {}  # mode -> wall seconds per step (+ ranking) of finished lanes


def lane(args, job: tuple, work: Callable[[Any, tuple], bool]) -> None:
    """One job of a lane: ``work(args, job)`` trains a super-net and ranks it (True when both
    finished); a failure is reported and the other lanes go on. Before a deadline, a job that would
    not finish in time (at the pace of finished ones of its mode) is skipped, leaving its lane to
    shorter jobs."""
    mode, steps, seed = job
    if args.deadline is not None:
        pace = _seconds.get(mode)
        if left(args) < 30 or (pace and steps * statistics.mean(pace) > left(args)):
            print(f"  skipped {run_name(*job, args.tag)}: it would not finish before the deadline", flush=True)
            return
    t = time.time()
    try:
        if work(args, job):
            _seconds.setdefault(mode, []).append((time.time() - t) / steps)
    except SystemExit as exc:
        print(f"  FAILED {run_name(*job, args.tag)}: {exc}", flush=True)


def paired_diff(a: list[float], b: list[float], seed: int = 0) -> tuple[float, float, float]:
    """Mean of a-b over paired seeds with a bootstrap 95% interval (nan with fewer than 3 pairs:
    a bootstrap over two values only restates their range)."""
    import numpy as np
    from scipy import stats

    d = np.asarray(a, float) - np.asarray(b, float)
    if len(d) < 3:
        return float(d.mean()) if len(d) else float("nan"), float("nan"), float("nan")
    if np.ptp(d) == 0:
        return float(d[0]), float(d[0]), float(d[0])
    ci = stats.bootstrap((d,), np.mean, n_resamples=2000, confidence_level=0.95, method="percentile",
                         rng=np.random.default_rng(seed)).confidence_interval
    return float(d.mean()), float(ci.low), float(ci.high)


def paired_t(a: list[float], b: list[float]) -> tuple[float, float]:
    """Student-t 95% interval of the mean paired difference: with 3-5 seeds the percentile
    bootstrap is too narrow (it cannot see beyond the few differences it resamples)."""
    import numpy as np
    from scipy import stats

    d = np.asarray(a, float) - np.asarray(b, float)
    if len(d) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return float(d.mean() - half), float(d.mean() + half)


def baseline(groups: dict, tag: str, steps: int) -> list[dict]:
    """The uniform runs a recipe's MAGIC runs are compared with: its own, else those of its base
    recipe. A sweep names its variants BASE+VARIANT (``lr0.1+lam0.3``: recipe lr0.1 plus another
    MAGIC-A weight); such options do not touch uniform sampling, so its runs are not repeated."""
    own = groups.get((tag, steps), {}).get("uniform")
    if own or "+" not in tag:
        return own or []
    return groups.get((tag.split("+")[0], steps), {}).get("uniform", [])


def recipe(tag: str) -> str:
    """How a report names a recipe tag ('' is the harness's default recipe)."""
    return f"recipe `{tag}`" if tag else "the default recipe"


def baseline_note(by_mode: dict, tag: str, base: dict) -> list[str]:
    """Says where a sweep variant's uniform runs come from when it has none of its own."""
    if "uniform" in by_mode or not base:
        return []
    return ["", f"Differences are from uniform of {recipe(tag.split('+')[0])} (same budget, same seeds): "
            "this recipe only changes options of the MAGIC modes."]


def against_base_recipe(groups: dict, tag: str, steps: int) -> list[str]:
    """For a sweep variant BASE+VARIANT: each mode against the same mode of BASE on the same seeds
    (paired t 95%), which is what a sweep asks -- does the variant beat the default settings?"""
    if "+" not in tag:
        return []
    base_tag = tag.split("+")[0]
    lines = []
    for mode in MODES:
        base = {r["seed"]: r["tau"] for r in groups.get((base_tag, steps), {}).get(mode, [])}
        pairs = sorted((r["seed"], r["tau"], base[r["seed"]]) for r in groups.get((tag, steps), {}).get(mode, [])
                       if r["seed"] in base)
        if not pairs:
            continue
        seeds, ours, theirs = zip(*pairs)
        lo, hi = paired_t(list(ours), list(theirs))
        interval = f" [t 95% {lo:+.3f}, {hi:+.3f}]" if len(pairs) > 1 else " (one seed: no interval)"
        lines.append(f"{mode} against {mode} of {recipe(base_tag)} on the same seeds "
                     f"({','.join(map(str, seeds))}): {statistics.mean(ours):.3f} vs {statistics.mean(theirs):.3f}, "
                     f"diff {statistics.mean(ours) - statistics.mean(theirs):+.3f}{interval}.")
    return lines


def holm(pvalues: dict[str, float]) -> dict[str, float]:
    """Holm's step-down adjustment: comparing several modes with uniform, one interval excluding
    zero by chance is likely; an adjusted p below 0.05 is not."""
    order = sorted(pvalues, key=pvalues.get)
    adjusted, running = {}, 0.0
    for i, mode in enumerate(order):
        running = max(running, min(1.0, (len(order) - i) * pvalues[mode]))
        adjusted[mode] = running
    return adjusted


def mode_table(by_mode: dict, base: dict) -> list[str]:
    """One row per mode: tau over seeds and, against uniform (``base``: seed -> row), the paired
    difference with its bootstrap and t intervals and the paired t-test p with Holm's adjustment."""
    from scipy import stats

    rows, pvalues = [], {}
    for mode in MODES:
        rs = sorted(by_mode.get(mode, []), key=lambda r: r["seed"])
        if not rs:
            continue
        diff = "- | -"
        if mode != "uniform" and base:
            pairs = [(r["tau"], base[r["seed"]]["tau"]) for r in rs if r["seed"] in base]
            a, b = [p[0] for p in pairs], [p[1] for p in pairs]
            m, lo, hi = paired_diff(a, b)
            diff = (f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}] (n={len(pairs)})" if lo == lo
                    else f"{m:+.3f} (n={len(pairs)}, no interval below 3 pairs)")
            tlo, thi = paired_t(a, b)
            diff += f" | [{tlo:+.3f}, {thi:+.3f}]" if tlo == tlo else " | -"
            if len(pairs) >= 2 and len(set(x - y for x, y in pairs)) > 1:
                pvalues[mode] = float(stats.ttest_rel(a, b).pvalue)
        rows.append((mode, rs, diff))
    adjusted = holm(pvalues) if pvalues else {}
    conv = all("conv_tau" in r for _, rs, _ in rows for r in rs)  # nb201: the convolution bias
    lines = ["| mode | n seeds | Kendall tau (mean +- std) | diff from uniform [bootstrap 95%] | [t 95%] | "
             "p (Holm) | top-1 regret | top-5 regret | coverage | loss (last 10%) | mean estimate | "
             + ("tau(estimate, #conv) | " if conv else "") + "minutes |", "|---" * (12 + conv) + "|"]
    for mode, rs, diff in rows:
        taus = [r["tau"] for r in rs]
        std = statistics.stdev(taus) if len(taus) > 1 else float("nan")
        p = f"{pvalues[mode]:.3f} ({adjusted[mode]:.3f})" if mode in pvalues else "-"
        mean = lambda k: statistics.mean(r[k] for r in rs)  # noqa: E731
        lines.append(f"| {mode} | {len(rs)} (seeds {','.join(str(r['seed']) for r in rs)}) | "
                     f"{statistics.mean(taus):.3f} +- {std:.3f} | {diff} | {p} | {mean('top1_regret'):.2f} | "
                     f"{mean('top5_regret'):.2f} | {mean('coverage'):.2f} | {mean('final_loss'):.2f} | "
                     f"{mean('mean_estimate'):.3f} | " + (f"{mean('conv_tau'):+.2f} | " if conv else "")
                     + f"{mean('seconds') / 60:.1f} |")
    if pvalues:
        lines += ["", "p: paired t-test against uniform (Holm-adjusted over the modes of this table)."]
    return lines


def estimator_noise(uniform: list[dict]) -> list[str]:
    """Kendall tau between the estimates of every two uniform super-nets of different seeds (rows
    with ``estimates``: arch -> estimate): the estimator's own noise."""
    import numpy as np
    from scipy import stats

    uni = sorted(uniform, key=lambda r: r["seed"])
    if len(uni) < 2:
        return []
    archs = sorted(uni[0]["estimates"])
    taus = [stats.kendalltau([a["estimates"][x] for x in archs], [b["estimates"][x] for x in archs]).statistic
            for i, a in enumerate(uni) for b in uni[i + 1:]]
    return ["", f"Estimator noise: Kendall tau between the estimates of two uniform super-nets (different "
            f"seeds) = {np.mean(taus):.3f}" + (f" +- {np.std(taus, ddof=1):.3f}" if len(taus) > 1 else "")
            + f" over {len(taus)} pair(s) of seeds, on the same {len(archs)} children."]
