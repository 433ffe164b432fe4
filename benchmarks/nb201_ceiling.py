"""The ceiling of the CPU regime: NAS-Bench-201 children trained standalone on the super-nets' data.

A super-net trained on the 5,170-image CIFAR-10 subset can at best rank children the way the same
children rank when each is trained alone on that data. This script trains the first ``--n`` of the
100 children that docs/reproduction.md ranks (``nas rank --children 100``, seed 0) standalone with
``nas retrain``'s recipe (nb201's SGD default, batch 64; cached by ``nas.analysis.GroundTruth``, so a
rerun resumes), ``--seeds`` seeds each, and reports:

- Kendall tau of their test accuracy (1,017 test images) against the table (12-epoch ``cifar10-test``),
  per seed and for the mean of the seeds,
- their seed-to-seed agreement (tau between the two seeds' accuracies),
- ``params`` on the same children (the free baseline), and the cost in CPU-seconds,
- convergence: on ``--convergence-children`` of them, test accuracy at each of ``--convergence``
  budgets (is the ceiling's budget where the children have stopped improving?).

    python benchmarks/nb201_ceiling.py --n 40 --steps 1000 --seeds 0,1 --jobs 2
    python benchmarks/nb201_ceiling.py --n 3 --steps 2000 --seeds 0 --jobs 1     # convergence probes
    python benchmarks/nb201_ceiling.py --report-only --convergence 2000,4000 --convergence-children 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def children(args) -> list[str]:
    from nas import get_space
    from nas.analysis import sample_children

    space = get_space("nb201", args.preset)
    return [space.encode(a) for a in sample_children(space, 100, 0)][: args.n]


def ground_truth(args, steps: int, seed: int):
    from nas.analysis import GroundTruth

    return GroundTruth("nb201", args.preset, "cifar10", steps, seed, args.cache,
                       {"data_dir": str(args.data_dir)})


def table(args) -> dict[str, float]:
    from nas.analysis import table_ground_truth
    from nas import get_space

    archs = children(args)
    return table_ground_truth(get_space("nb201", args.preset), args.table, archs, "cellstr", args.metric)


def compute(args) -> None:
    archs = children(args)
    for seed in args.seeds:
        t = time.time()
        ground_truth(args, args.steps, seed).compute(archs, jobs=args.jobs)
        print(f"seed {seed}: {len(archs)} children at {args.steps} steps ({time.time() - t:.0f} s)", flush=True)
    if args.convergence:
        probe = archs[: args.convergence_children]
        for steps in args.convergence:
            ground_truth(args, steps, args.seeds[0]).compute(probe, jobs=args.jobs)


def report(args) -> dict:
    from scipy.stats import kendalltau
    from nas import get_space

    archs = children(args)
    truth = table(args)
    space = get_space("nb201", args.preset)
    per_seed = {s: ground_truth(args, args.steps, s) for s in args.seeds}
    done = [a for a in archs if all(a in gt.results for gt in per_seed.values())]
    out: dict = {"n_planned": len(archs), "n": len(done), "steps": args.steps, "seeds": args.seeds,
                 "metric": args.metric, "table": str(args.table), "data_dir": str(args.data_dir)}
    if len(done) >= 3:
        tab = [truth[a] for a in done]
        acc = {s: [gt.value(a, "test", "accuracy") for a in done] for s, gt in per_seed.items()}
        mean_acc = [statistics.mean(acc[s][i] for s in args.seeds) for i in range(len(done))]
        params = [space.cost(a).params for a in done]
        out.update({
            "tau_per_seed": {str(s): kendalltau(acc[s], tab).statistic for s in args.seeds},
            "tau_mean_of_seeds": kendalltau(mean_acc, tab).statistic,
            "tau_params": kendalltau(params, tab).statistic,
            "tau_params_vs_standalone": kendalltau(params, mean_acc).statistic,
            "mean_test_accuracy": statistics.mean(mean_acc),
            "cpu_seconds": sum(gt.results[a]["seconds"] for gt in per_seed.values() for a in done),
        })
        if len(args.seeds) >= 2:
            s0, s1 = args.seeds[:2]
            out["seed_to_seed_tau"] = kendalltau(acc[s0], acc[s1]).statistic
        out["children"] = [{"arch": a, "table": truth[a], "params": p,
                            **{f"test_seed{s}": acc[s][i] for s in args.seeds}}
                           for i, (a, p) in enumerate(zip(done, params))]
    conv = []
    for a in archs[: args.convergence_children]:
        row = {"arch": a}
        for steps in sorted(set(args.convergence) | {args.steps}):
            gt = ground_truth(args, steps, args.seeds[0])
            if a in gt.results:
                row[str(steps)] = gt.value(a, "test", "accuracy")
        conv.append(row)
    out["convergence"] = conv
    return out


def write(args, r: dict) -> None:
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "ceiling.json").write_text(json.dumps(r, indent=1))
    lines = [f"# Standalone ceiling: nb201 {args.preset} on {args.data_dir.name}", "",
             f"{r['n']} of {r['n_planned']} children finished, {r['steps']} steps, seeds {r['seeds']}.", ""]
    if "tau_mean_of_seeds" in r:
        lines += ["| estimator | Kendall tau vs table (n=%d) |" % r["n"], "|---|---|"]
        for s, t in r["tau_per_seed"].items():
            lines.append(f"| standalone, seed {s} | {t:.3f} |")
        lines.append(f"| standalone, mean of seeds | {r['tau_mean_of_seeds']:.3f} |")
        lines.append(f"| params | {r['tau_params']:.3f} |")
        if "seed_to_seed_tau" in r:
            lines += ["", f"Seed-to-seed tau: {r['seed_to_seed_tau']:.3f}; "
                          f"mean test accuracy {r['mean_test_accuracy']:.3f}; "
                          f"cost {r['cpu_seconds'] / 3600:.2f} CPU-hours (one thread per child)."]
    if r["convergence"]:
        budgets = sorted({k for row in r["convergence"] for k in row if k != "arch"}, key=int)
        lines += ["", "Convergence (test accuracy, seed %d):" % r["seeds"][0], "",
                  "| child | " + " | ".join(f"{b} steps" for b in budgets) + " |",
                  "|---|" + "---|" * len(budgets)]
        for row in r["convergence"]:
            lines.append(f"| `{row['arch']}` | " + " | ".join(
                f"{row[b]:.3f}" if b in row else "-" for b in budgets) + " |")
    (args.results / "ceiling.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=SHARED / "cifar10-subset")
    parser.add_argument("--table", type=Path, default=SHARED / "nasbench201" / "nb201_12epoch.csv")
    parser.add_argument("--metric", default="cifar10-test")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--n", type=int, default=40, help="the first N of the docs' 100 children")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1])
    parser.add_argument("--convergence", type=lambda s: [int(x) for x in s.split(",") if x], default=[])
    parser.add_argument("--convergence-children", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "reproduction" / "nb201-ceiling",
                        help="ground-truth cache (ground-truth/: one JSON per budget and seed; the "
                             "committed one, so a rerun resumes the measurement)")
    parser.add_argument("--results", type=Path, default=Path("docs/reproduction/nb201-ceiling"))
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if not args.report_only:
        compute(args)
    write(args, report(args))


if __name__ == "__main__":
    main()
