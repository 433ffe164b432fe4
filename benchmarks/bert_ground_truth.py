"""How far a bert standalone ground truth agrees with itself: how much of any super-net's tau is noise.

The same children (sampled once, seed 0) are trained standalone on a task (``synthetic-text``, or
``glue:sst2`` with ``--data-dir``) with each training setting (learning rate x steps) and several
training seeds; the Kendall tau between two seeds' dev accuracies is the ground truth's
self-agreement. A super-net cannot rank children better than this, so a mode comparison needs it
high (the issue asks for >= 0.8). Reported per setting: self-agreement (every pair of seeds), the
spread of the children's accuracy, how many sit at chance, and the cost.

    python benchmarks/bert_ground_truth.py --lrs 0.001 --steps 1000,3000 --children 50 --seeds 2
    python benchmarks/bert_ground_truth.py --lrs 0.001 --steps 1000,3000 --report-only

Everything is cached under ``--out`` (one ground-truth file per setting and seed, each child saved
as soon as it is trained): rerunning resumes; ``--deadline MINUTES`` stops starting children then.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from pathlib import Path

SPACE, PRESET, BATCH = "bert", "tiny", 64
CHANCE = 0.55  # dev accuracy at or below this: the child learned nothing beyond the label prior


def children(n: int) -> list[str]:
    from nas import get_space
    from nas.analysis import sample_children

    space = get_space(SPACE, preset=PRESET)
    return [space.encode(a) for a in sample_children(space, n, seed=0)]


def ground_truth(out: Path, task: str, data_dir: str | None, lr: float, steps: int, seed: int):
    from nas.analysis import GroundTruth

    return GroundTruth(SPACE, PRESET, task, steps, seed, out / "cache",
                       {"batch_size": BATCH, "lr": lr, "data_dir": data_dir})


def compute(args, archs: list[str]) -> None:
    """Train what is missing, a few children at a time with every seed, so that a run stopped by
    the deadline already holds pairs of seeds to compare."""
    for lr, steps in itertools.product(args.lrs, args.steps):
        seeds = [ground_truth(args.out, args.task, args.data_dir, lr, steps, s) for s in range(args.seeds)]
        size = 4 * args.jobs
        for start in range(0, len(archs), size):
            for seed, gt in enumerate(seeds):
                chunk = gt.missing(archs[start:start + size])
                if not chunk:
                    continue
                if args.deadline is not None and time.time() > args.deadline_at:
                    print("  deadline: stopped (rerun to resume)", flush=True)
                    return
                t = time.time()
                gt.compute(chunk, jobs=args.jobs, progress=False)
                print(f"  lr {lr} steps {steps} seed {seed}: {len(gt.results)} children "
                      f"({(time.time() - t) / len(chunk):.0f} s per child)", flush=True)


def settings(out: Path, archs: list[str], task: str = "synthetic-text", least: int = 3) -> list[dict]:
    """Every (lr, steps) with at least two seeds, measured on the ``archs`` every seed holds (a
    partial ground truth is reported on what it has, with at least ``least`` children)."""
    from scipy import stats

    found: dict = {}
    for path in sorted((out / "cache" / "ground-truth").glob("*.json")):
        data = json.loads(path.read_text())
        key, results = data["key"], data["results"]
        if key["space"] != SPACE or key["task"] != task:
            continue
        setting = (key["train_options"]["lr"], key["steps"])
        found.setdefault(setting, {})[key["seed"]] = results
    rows = []
    for (lr, steps), by_seed in sorted(found.items()):
        seeds = sorted(by_seed)
        have = [a for a in archs if all(a in by_seed[s] for s in seeds)]
        if len(seeds) < 2 or len(have) < least:
            continue
        acc = {s: [by_seed[s][a]["dev"]["accuracy"] for a in have] for s in seeds}
        taus = [_tau(acc[i], acc[j]) for i, j in itertools.combinations(seeds, 2)]
        mean_acc = [statistics.mean(acc[s][k] for s in seeds) for k in range(len(have))]
        seconds = [by_seed[s][a]["seconds"] for s in seeds for a in have]
        rows.append({"lr": lr, "steps": steps, "seeds": seeds, "children": len(have), "archs": have,
                     "self_tau": statistics.mean(taus), "self_tau_pairs": taus,
                     "spearman": float(stats.spearmanr(acc[seeds[0]], acc[seeds[1]]).statistic),
                     "acc_min": min(mean_acc), "acc_max": max(mean_acc), "acc_std": statistics.stdev(mean_acc),
                     "at_chance": sum(max(acc[s][k] for s in seeds) <= CHANCE for k in range(len(have))),
                     "seconds_per_child": statistics.mean(seconds), "accuracy": acc})
    return rows


def _tau(x: list[float], y: list[float]) -> float:
    from scipy import stats

    return float(stats.kendalltau(x, y).statistic)


def report(args, archs: list[str]) -> None:
    """Tables for the settings asked for (``--lrs`` x ``--steps``), of those with two seeds."""
    rows = [r for r in settings(args.out, archs, args.task) if r["lr"] in args.lrs and r["steps"] in args.steps]
    args.out.mkdir(parents=True, exist_ok=True)
    lines = [f"# bert ground truth: self-agreement of standalone children on {args.task}", "",
             f"Children sampled with seed 0 (the first {len(archs)}; a row counts those every seed has), "
             f"bert `{PRESET}`, batch {BATCH}, AdamW (the "
             "space's default optimizer) at each learning rate, cosine schedule; dev accuracy. "
             "Self-agreement: Kendall tau between the dev accuracies of two training seeds (mean over "
             f"pairs). At chance: children whose best seed is at or below {CHANCE}.", "",
             "| lr | steps | seeds | children | self-agreement tau | Spearman | dev accuracy (mean over seeds): "
             "min - max, std | at chance | seconds per child |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['lr']} | {r['steps']} | {len(r['seeds'])} | {r['children']} | {r['self_tau']:.3f}"
                     + (f" ({', '.join(f'{t:.2f}' for t in r['self_tau_pairs'])})" if len(r["self_tau_pairs"]) > 1 else "")
                     + f" | {r['spearman']:.3f} | {r['acc_min']:.3f} - {r['acc_max']:.3f}, {r['acc_std']:.3f} | "
                     f"{r['at_chance']} | {r['seconds_per_child']:.0f} |")
    common = [a for a in archs if all(a in r["archs"] for r in rows)]
    if len(rows) > 1 and len(common) >= 3 and any(r["children"] > len(common) for r in rows):
        same = []  # settings reached different children: compare them on the ones all reached too
        for r in rows:
            idx = [r["archs"].index(a) for a in common]
            accs = [[r["accuracy"][s][k] for k in idx] for s in r["seeds"]]
            same.append(f"{r['lr']} x {r['steps']} steps: "
                        f"{statistics.mean(_tau(x, y) for x, y in itertools.combinations(accs, 2)):.3f}")
        lines += ["", f"On the {len(common)} children every setting has: self-agreement tau " + "; ".join(same) + "."]
    if rows:
        plot(args.out / "gt_agreement.png", rows)
        lines += ["", "![seed 0 against seed 1](gt_agreement.png)"]
    (args.out / "gt.md").write_text("\n".join(lines) + "\n")
    (args.out / "gt.json").write_text(json.dumps({"children": archs, "settings": rows}, indent=1) + "\n")
    print((args.out / "gt.md").read_text())


def plot(path: Path, rows: list[dict]) -> None:
    from nas.report import figure, save, style

    fig, axes = figure(3.2 * len(rows), 3.2, ncols=len(rows), sharey=True)
    for ax, r in zip(axes if len(rows) > 1 else [axes], rows):
        a, b = r["accuracy"][r["seeds"][0]], r["accuracy"][r["seeds"][1]]
        ax.scatter(a, b, s=10)
        lo, hi = min(a + b), max(a + b)
        ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8)
        style(ax, f"seed {r['seeds'][0]} dev accuracy", f"seed {r['seeds'][1]}",
              f"lr {r['lr']}, {r['steps']} steps: tau {r['self_tau']:.2f} (n={r['children']})")
    save(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bert-gt"))
    parser.add_argument("--task", default="synthetic-text", help="e.g. glue:sst2 (with --data-dir)")
    parser.add_argument("--data-dir", help="the task's data (GLUE: the folder holding SST-2/)")
    parser.add_argument("--lrs", default="0.001", help="AdamW learning rates, comma-separated")
    parser.add_argument("--steps", default="3000", help="standalone steps per child, comma-separated")
    parser.add_argument("--children", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=2, help="training seeds per child (>= 2)")
    parser.add_argument("--jobs", type=int, default=2, help="children trained at once")
    parser.add_argument("--deadline", type=float, help="minutes: start no child after")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    args.lrs = [float(x) for x in args.lrs.split(",")]
    args.steps = [int(x) for x in args.steps.split(",")]
    if args.seeds < 2:
        parser.error("--seeds must be at least 2: self-agreement compares two training seeds")
    args.deadline_at = None if args.deadline is None else time.time() + 60 * args.deadline
    if args.report_only and not (args.out / "cache" / "ground-truth").is_dir():
        parser.error(f"--report-only: no ground truth under {args.out / 'cache' / 'ground-truth'}; "
                     "pass the --out of an earlier run, or run without --report-only")
    archs = children(args.children)
    if not args.report_only:
        import torch

        torch.set_num_threads(1)  # --jobs 1 trains in this process: one core, as each worker does
        compute(args, archs)
    report(args, archs)


if __name__ == "__main__":
    main()
