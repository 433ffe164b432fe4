"""Benchmark the searchers on a NAS-Bench-201 table: best metric found after 50/100/150/300 archs.

Every searcher runs through the real search driver (budget = distinct archs, in-memory, no output
folder) once per seed with the largest budget; the best-so-far curve gives every smaller budget.
The calibration baseline is *plain* regularized evolution as published for NAS-Bench-201
(population 10, tournament 3, one-slot mutation), implemented here independently of the package:
it re-evaluates repeated archs and counts every query, as in the literature.

    python benchmarks/searchers.py --table ../shared/data/nasbench201/nb201_12epoch.csv \\
        --metrics cifar10-test,cifar100-test --seeds 30 --jobs 2
    python benchmarks/searchers.py --table ... --tune      # population/tournament grid

Prints a markdown table (mean ± std over seeds, and the table's optimum); ``--json`` saves raw curves.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nas import TableEvaluator, get_space, search  # noqa: E402

SEARCHERS = {
    # label: (searcher name, options)
    "random": ("random", {}),
    "evolutionary": ("evolutionary", {}),
    "optuna-tpe": ("optuna", {"sampler": "tpe"}),
    "plain-re": (None, {}),  # calibration: see plain_regularized_evolution
}
_EVALUATORS: dict[tuple[str, str], TableEvaluator] = {}


def evaluator(table: str, metric: str) -> TableEvaluator:
    key = (table, metric)
    if key not in _EVALUATORS:
        _EVALUATORS[key] = TableEvaluator(get_space("nb201"), table, metric)
    return _EVALUATORS[key]


def plain_regularized_evolution(ev: TableEvaluator, queries: int, seed: int,
                                population: int = 10, tournament: int = 3) -> list[float]:
    """Real et al. (2019) as run on NAS-Bench-201: every query counts, repeats included."""
    rng, space = random.Random(seed), ev.space
    metric, pop, scores = ev.primary_metric, [], []
    while len(scores) < queries:
        if len(pop) < population:
            arch = space.sample(rng)
        else:
            parent = max(rng.sample(pop, tournament), key=lambda m: m[1])[0]
            arch = space.mutate(parent, rng, 1)
        score = ev.evaluate(arch)[metric]
        pop.append((arch, score))
        if len(pop) > population:
            pop.pop(0)
        scores.append(score)
    return scores


def best_so_far(scores: list[float]) -> list[float]:
    out, best = [], float("-inf")
    for s in scores:
        best = max(best, s)
        out.append(best)
    return out


def run_one(task: tuple) -> tuple:
    table, metric, label, seed, budget, options = task
    ev = evaluator(table, metric)
    start = time.perf_counter()
    if label == "plain-re":
        scores = plain_regularized_evolution(ev, budget, seed)
    else:
        name, defaults = SEARCHERS.get(label, ("evolutionary", {}))
        result = search(ev, name, budget, seed=seed, options={**defaults, **options})
        scores = [r["score"] for r in result.records]
    return table, metric, label, seed, best_so_far(scores), time.perf_counter() - start


def run_tasks(tasks: list[tuple], jobs: int) -> list[tuple]:
    if jobs <= 1:
        return [run_one(t) for t in tasks]
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        return pool.map(run_one, tasks, chunksize=1)


def summarise(results: list[tuple], budgets: list[int]) -> dict:
    curves: dict = {}
    for _, metric, label, _, curve, seconds in results:
        entry = curves.setdefault(metric, {}).setdefault(label, {"curves": [], "seconds": 0.0})
        entry["curves"].append(curve)
        entry["seconds"] += seconds
    summary = {}
    for metric, by_label in curves.items():
        summary[metric] = {}
        for label, entry in by_label.items():
            rows = {}
            for b in budgets:
                values = [c[b - 1] for c in entry["curves"]]
                rows[b] = (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)
            summary[metric][label] = {"budgets": rows, "seconds_per_run": entry["seconds"] / len(entry["curves"])}
    return summary


def markdown(summary: dict, budgets: list[int], optima: dict, seeds: int) -> str:
    metrics = list(summary)
    head = "| searcher | archs | " + " | ".join(metrics) + " |"
    lines = [head, "|" + "---|" * (2 + len(metrics))]
    labels = [lab for lab in SEARCHERS if lab in summary[metrics[0]]] + \
        [lab for lab in summary[metrics[0]] if lab not in SEARCHERS]
    for label in labels:
        for b in budgets:
            cells = []
            for m in metrics:
                mean, std = summary[m][label]["budgets"][b]
                cells.append(f"{mean:.2f} ± {std:.2f}")
            lines.append(f"| {label} | {b} | " + " | ".join(cells) + " |")
    lines.append("| table optimum | - | " + " | ".join(f"{optima[m]:.2f}" for m in metrics) + " |")
    seconds = ", ".join(f"{lab} {summary[metrics[0]][lab]['seconds_per_run']:.2f}s" for lab in labels)
    lines.append("")
    lines.append(f"mean ± std over {seeds} seeds; seconds per run of {budgets[-1]} archs: {seconds}")
    return "\n".join(lines)


def regret_table(summary: dict, budgets: list[int], optima: dict) -> str:
    """Tuning view: regret (optimum - best found) averaged over metrics, best configurations first."""
    labels = list(next(iter(summary.values())))
    rows = []
    for label in labels:
        regrets = [statistics.mean(optima[m] - summary[m][label]["budgets"][b][0] for m in summary)
                   for b in budgets]
        rows.append((statistics.mean(regrets), label, regrets))
    rows.sort()
    lines = ["| configuration | " + " | ".join(f"regret @{b}" for b in budgets) + " | mean |",
             "|" + "---|" * (len(budgets) + 2)]
    for mean, label, regrets in rows:
        lines.append(f"| {label} | " + " | ".join(f"{r:.3f}" for r in regrets) + f" | {mean:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="../shared/data/nasbench201/nb201_12epoch.csv")
    parser.add_argument("--metrics", default="cifar10-test,cifar100-test")
    parser.add_argument("--searchers", default=",".join(SEARCHERS))
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--budgets", default="50,100,150,300")
    parser.add_argument("--jobs", type=int, default=1, help="parallel processes")
    parser.add_argument("--tune", action="store_true", help="grid over evolutionary population/tournament")
    parser.add_argument("--json", type=Path, help="save the summary and raw curves here")
    args = parser.parse_args(argv)

    budgets = sorted(int(b) for b in args.budgets.split(","))
    metrics = args.metrics.split(",")
    if args.tune:
        grid = [(p, t) for p in (5, 10, 20, 25, 30, 50) for t in (2, 3, 5, 10, 25, 50) + (p,) if t <= p]
        grid = sorted(set(grid))
        tasks = [(args.table, m, f"evolutionary p{p} t{t}", s, budgets[-1], {"population": p, "tournament": t})
                 for m in metrics for p, t in grid for s in range(args.seeds)]
    else:
        tasks = [(args.table, m, label, s, budgets[-1], {})
                 for m in metrics for label in args.searchers.split(",") for s in range(args.seeds)]
    start = time.perf_counter()
    results = run_tasks(tasks, args.jobs)
    summary = summarise(results, budgets)
    optima = {m: evaluator(args.table, m).optimum()[1] for m in metrics}
    print(regret_table(summary, budgets, optima) if args.tune else markdown(summary, budgets, optima, args.seeds))
    print(f"\ntotal {time.perf_counter() - start:.0f}s, table {args.table}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "summary": summary, "optima": optima, "seeds": args.seeds, "table": args.table,
            "curves": [{"metric": m, "searcher": lab, "seed": s, "best": c} for _, m, lab, s, c, _ in results],
        }, indent=1))


if __name__ == "__main__":
    main()
