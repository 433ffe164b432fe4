"""bert super-nets of every mode ranked against a standalone ground truth (synthetic-text or SST-2).

The ground truth is ``bert_ground_truth.py``'s: the same children (seed 0) trained standalone with
``--gt-seeds`` training seeds, averaged; its seed-to-seed agreement (two single seeds; their mean is
less noisy, so a super-net can exceed it) is reported beside the modes, and each mode is also
scored on the pairs of children every seed orders the same way. Each super-net (``nas train bert``, one thread) is ranked
with ``nas rank RUN --ground-truth GT.json`` on those children. Reported per mode and budget, as
for nb201.py: Kendall tau over seeds, the paired difference from uniform with bootstrap and t 95%
intervals and Holm-adjusted p, top-1/top-5 regret (in dev-accuracy points x 100), coverage, final
loss and wall time; plus the estimator's own noise (tau between two uniform super-nets).

    python benchmarks/bert_ground_truth.py --lrs 0.001 --steps 3000 --children 50 --seeds 2
    python benchmarks/bert_modes.py --seeds 5 --budgets 1500 --gt-lr 0.001 --gt-steps 3000 --jobs 2
    python benchmarks/bert_modes.py --report-only ...   # same options: tables from what is finished

Everything is cached under ``--out`` (one folder per super-net, its ranking beside it): a rerun
resumes unfinished training and skips finished work; ``--deadline MINUTES`` as in nb201.py.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import _modes
from _modes import (MODES, against_base_recipe, baseline, baseline_note, estimator_noise, group_rows, left, mode_table,
                    paired_t, parse_seeds, regrets, run_name, run_tag)
from _nas_train import final_loss, nas_train, run_nas, task_losses
from bert_ground_truth import children, ground_truth, settings
from bert_plateau import left_plateau


def gt_seeds(args) -> list:
    """The ground truth of each standalone training seed (bert_ground_truth.py's cache)."""
    return [ground_truth(args.gt_dir, args.task, args.data_dir, args.gt_lr, args.gt_steps, s)
            for s in range(args.gt_seeds)]


def gt_file(args) -> Path:
    """The mean over GT seeds of each child's dev accuracy, written once all seeds are complete."""
    path = args.out / f"gt-{args.task.replace(':', '_')}-lr{args.gt_lr}-steps{args.gt_steps}-seeds{args.gt_seeds}.json"
    if path.exists():
        return path
    archs = children(args.children)
    seeds = gt_seeds(args)
    missing = sum(len(gt.missing(archs)) for gt in seeds)
    if missing:
        raise SystemExit(f"the ground truth lacks {missing} child trainings: run bert_ground_truth.py --out "
                         f"{args.gt_dir} --task {args.task} --lrs {args.gt_lr} --steps {args.gt_steps} "
                         f"--children {args.children} --seeds {args.gt_seeds} first")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({a: statistics.mean(gt.value(a, "dev", "accuracy") for gt in seeds)
                                for a in archs}, indent=1) + "\n")
    return path


def train(args, mode: str, steps: int, seed: int) -> Path | None:
    extra = ["--data-dir", args.data_dir] if args.data_dir else []
    return nas_train(args.out / "runs" / run_name(mode, steps, seed, args.tag), [
        "bert", "--task", args.task, *extra, "--mode", mode, "--steps", str(steps), "--seed", str(seed),
        "--batch-size", "64", *args.train_args], timeout=left(args))


def rank_dir(args, run: Path) -> Path:
    return run / f"rank-{args.gt.stem}"


def rank_run(args, run: Path) -> dict | None:
    out = rank_dir(args, run)
    if (out / "rank.json").exists():
        return json.loads((out / "rank.json").read_text())
    if not run_nas(["rank", str(run), "--ground-truth", str(args.gt), "--children", str(args.children),
                    "--seed", "0", "--out", str(out), "--json"], timeout=left(args)):
        return None
    r = json.loads((out / "rank.json").read_text())
    print(f"  ranked {run.name}: tau {r['kendall_tau']}", flush=True)
    return r


def work(args, job: tuple) -> bool:
    run = train(args, *job)
    return run is not None and rank_run(args, run) is not None


def collect(args) -> list[dict]:
    rows = []
    for run in sorted((args.out / "runs").glob("*")):
        if not (rank_dir(args, run) / "rank.json").exists():
            continue
        cfg = json.loads((run / "config.json").read_text())["train"]
        r = json.loads((rank_dir(args, run) / "rank.json").read_text())
        summary = json.loads((run / "train_summary.json").read_text())
        losses = task_losses(run)
        top1, top5 = regrets(r["children"])
        rows.append({"run": run.name, "mode": cfg["mode"], "steps": cfg["steps"], "seed": cfg["seed"],
                     "tag": run_tag(run.name, cfg["seed"]),
                     "tau": r["kendall_tau"] or 0.0,  # constant estimates: no ranking information
                     "top1_regret": 100 * top1, "top5_regret": 100 * top5,
                     "coverage": summary["coverage"]["mean_min_max_ratio"], "seconds": summary["seconds"],
                     "final_loss": final_loss(losses), "left_plateau_at": left_plateau(losses),
                     "mean_estimate": statistics.mean(c["estimate"] for c in r["children"]),
                     "estimates": {c["arch"]: c["estimate"] for c in r["children"]}})
    return rows


def resolved_pairs(seed_values: list[dict[str, float]]) -> list[tuple[str, str]]:
    """(better, worse) for every pair of children that all standalone seeds order the same way:
    the pairs the ground truth resolves. When seed noise swamps the children's differences (SST-2's
    attention children all land at 0.85-0.86), tau over all pairs mostly scores noise."""
    pairs = []
    for a, b in itertools.combinations(sorted(seed_values[0]), 2):
        signs = {(v[a] > v[b]) - (v[a] < v[b]) for v in seed_values}
        if signs in ({1}, {-1}):
            pairs.append((a, b) if signs == {1} else (b, a))
    return pairs


def pair_agreement(estimates: dict[str, float], pairs: list[tuple[str, str]]) -> float:
    """Kendall-style agreement on ``pairs``: (concordant - discordant) / pairs; ties count 0."""
    return sum((estimates[hi] > estimates[lo]) - (estimates[hi] < estimates[lo]) for hi, lo in pairs) / len(pairs)


def resolved_line(by_mode: dict, pairs: list[tuple[str, str]], n_children: int) -> list[str]:
    """Each mode's agreement on the resolved pairs, and its paired difference from uniform."""
    if not pairs:
        return []
    score = {m: {r["seed"]: pair_agreement(r["estimates"], pairs) for r in rs} for m, rs in by_mode.items()}
    parts = []
    for mode in (m for m in MODES if score.get(m)):
        vals = list(score[mode].values())
        part = f"{mode} {statistics.mean(vals):.3f}" + (f" +- {statistics.stdev(vals):.3f}" if len(vals) > 1 else "")
        common = sorted(set(score[mode]) & set(score.get("uniform", {})))
        if mode != "uniform" and len(common) > 1:
            a, b = [score[mode][s] for s in common], [score["uniform"][s] for s in common]
            lo, hi = paired_t(a, b)
            part += f" (diff {statistics.mean(a) - statistics.mean(b):+.3f}, t 95% [{lo:+.3f}, {hi:+.3f}])"
        parts.append(part)
    total = n_children * (n_children - 1) // 2
    return ["", f"On the {len(pairs)} of {total} pairs of children that every standalone seed orders the same way "
            f"(the pairs the ground truth resolves; it scores 1 on them by construction), Kendall-style agreement "
            f"(concordant - discordant) / pairs: {'; '.join(parts)}."]


def plateau_line(by_mode: dict) -> list[str]:
    """When each super-net left the loss plateau (first step whose 50-step mean loss is below
    0.6; ln 2 = 0.693 is the binary label prior): a run still on it ranks nothing."""
    runs = [f"{m} s{r['seed']}: {r['left_plateau_at'] or 'never'}"
            for m in MODES for r in sorted(by_mode.get(m, []), key=lambda r: r["seed"])]
    stuck = sum(r["left_plateau_at"] is None for rs in by_mode.values() for r in rs)
    return ["", f"Left the loss plateau at (first step with 50-step mean loss < 0.6): {'; '.join(runs)} "
            f"-- {stuck} of {len(runs)} super-nets never did."]


def report(args) -> None:
    rows = collect(args)
    ceiling = [s for s in settings(args.gt_dir, children(args.children), args.task)
               if s["lr"] == args.gt_lr and s["steps"] == args.gt_steps]
    lines = [f"# bert super-nets ranked against a standalone ground truth ({args.task})", "",
             f"Ground truth: {args.children} children (seed 0) trained standalone {args.gt_steps} steps at "
             f"lr {args.gt_lr}, dev accuracy averaged over {args.gt_seeds} training seeds"
             + (f"; two single seeds agree at Kendall tau {ceiling[0]['self_tau']:.3f} (their mean, used here, "
                  "is less noisy: a super-net can exceed that figure)."
                if ceiling else ".") + " Regret in dev-accuracy points.", ""]
    archs = children(args.children)
    pairs = resolved_pairs([{a: gt.value(a, "dev", "accuracy") for a in archs} for gt in gt_seeds(args)])
    groups = group_rows(rows)
    for (tag, steps), by_mode in sorted(groups.items()):
        base = {r["seed"]: r for r in baseline(groups, tag, steps)}
        lines += [f"## {steps} steps" + (f", recipe `{tag}`" if tag else ""), "", *mode_table(by_mode, base),
                  *baseline_note(by_mode, tag, base), *([""] if "+" in tag else []),
                  *against_base_recipe(groups, tag, steps), *estimator_noise(by_mode.get("uniform", [])),
                  *resolved_line(by_mode, pairs, len(archs)), *plateau_line(by_mode), ""]
    (args.out / "tables.md").write_text("\n".join(lines) + "\n")
    slim = [{k: v for k, v in r.items() if k != "estimates"} for r in rows]
    (args.out / "results.json").write_text(json.dumps(
        {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
         "ceiling": [{k: v for k, v in s.items() if k != "accuracy"} for s in ceiling], "rows": slim},
        indent=1) + "\n")
    print((args.out / "tables.md").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bert-modes"))
    parser.add_argument("--task", default="synthetic-text")
    parser.add_argument("--data-dir")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--seeds", type=parse_seeds, default="3", help="how many seeds (3: seeds 0-2) or a list (0,3,4)")
    parser.add_argument("--budgets", default="1500", help="super-net steps, comma-separated")
    parser.add_argument("--children", type=int, default=50)
    parser.add_argument("--gt-dir", type=Path, default=Path("runs/bert-gt"), help="bert_ground_truth.py's --out")
    parser.add_argument("--gt-lr", type=float, default=0.001)
    parser.add_argument("--gt-steps", type=int, default=3000)
    parser.add_argument("--gt-seeds", type=int, default=2)
    parser.add_argument("--tag", default="", help="names a recipe (extra --train-args) in run names")
    parser.add_argument("--train-args", default="", help="extra `nas train` options, one string")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--deadline", type=float, help="minutes: start no job after, stop running ones then")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    if args.train_args and not args.tag:
        parser.error("--train-args changes the recipe: name it with --tag")
    args.train_args = shlex.split(args.train_args)
    args.deadline_at = None if args.deadline is None else time.time() + 60 * args.deadline
    args.gt = gt_file(args)
    if not args.report_only:
        seeds = args.seeds
        jobs = [(m, b, s) for b in map(int, args.budgets.split(",")) for s in seeds for m in args.modes.split(",")]
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(lambda job: _modes.lane(args, job, work), jobs))
    report(args)


if __name__ == "__main__":
    main()
