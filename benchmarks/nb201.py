"""NAS-Bench-201 as a ranking harness: super-nets on real CIFAR-10, judged against the benchmark's table.

Every super-net (space ``nb201``, CPU preset, task ``cifar10``) is trained with ``nas train`` and
ranked with ``nas rank``'s table ground truth on the same children (sampled once by seed): no
child is ever retrained, so the ground truth is exact and free. Reported per mode and budget:
Kendall tau (mean +- std over seeds), the paired difference of each MAGIC mode from uniform with a
bootstrap 95% interval, top-1/top-5 regret, option coverage and wall time; plus the estimator's own
noise (tau between two uniform seeds' estimates) and tau against the training budget for uniform.

    python benchmarks/nb201.py --modes uniform --seeds 1 --budgets 500,1000,2000,4000,8000  # curve
    python benchmarks/nb201.py --modes uniform,magic-t,magic-a,magic-at --seeds 5 --budgets 2000
    python benchmarks/nb201.py --report-only            # tables and plots from what is finished
    python benchmarks/nb201.py --modes magic-a --seeds 5 --budgets 4000 --tag lr0.1+lam0.3 \
        --train-args "--lr 0.1 --align-lambda 0.3"    # a MAGIC-A variant, compared with uniform of lr0.1
    python benchmarks/nb201.py ... --jobs 15 --deadline 8  # a GPU machine: 15 lanes, stop at 8 min

Data: ``--data-dir`` holds ``cifar-10-batches-bin/`` or ``-py/`` (default: the 5,170-image subset
in ``../shared/data/cifar10-subset``); ``--table`` a NAS-Bench-201 CSV (default the 12-epoch table).
Everything is cached under ``--out`` (one folder per super-net, its ranking beside it): rerunning
resumes unfinished training and skips finished work, so a measurement can span sessions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import _modes
from _modes import (MODES, against_base_recipe, baseline, baseline_note, estimator_noise, group_rows, left, mode_table,
                    parse_seeds, regrets, run_name, run_tag)
from _nas_train import final_loss, nas_train, run_nas

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def train(args, mode: str, steps: int, seed: int) -> Path | None:
    return nas_train(args.out / "runs" / run_name(mode, steps, seed, args.tag), [
        "nb201", "--preset", args.preset, "--task", "cifar10", "--data-dir", str(args.data_dir),
        "--mode", mode, "--steps", str(steps), "--seed", str(seed), *args.train_args],
        timeout=left(args))


def rank_dir(args, run: Path) -> Path:
    return run / f"rank-{args.metric}-n{args.children}-bn{args.bn_recal_batches}-{args.split}"


def rank_run(args, run: Path) -> dict | None:
    """``nas rank RUN --ground-truth TABLE --arch-column cellstr --metric COL`` (cached), in its own
    process: lanes rank in parallel, on the GPU when there is one."""
    out = rank_dir(args, run)
    if (out / "rank.json").exists():
        return json.loads((out / "rank.json").read_text())
    t = time.time()
    if not run_nas(["rank", str(run), "--ground-truth", str(args.table), "--arch-column", "cellstr",
                    "--metric", args.metric, "--children", str(args.children), "--seed", "0",
                    "--split", args.split, "--bn-recal-batches", str(args.bn_recal_batches),
                    "--out", str(out), "--json"], timeout=left(args)):
        print(f"  ranking {run.name} stopped at the deadline", flush=True)
        return None
    r = json.loads((out / "rank.json").read_text())
    print(f"  ranked {run.name}: tau {r['kendall_tau']:.3f} ({time.time() - t:.0f} s)", flush=True)
    return r


def search_dir(args, run: Path) -> Path:
    return run / f"search-{args.metric}-n{args.search_budget}"


def search_run(args, run: Path) -> dict | None:
    """``nas search --run RUN --table TABLE`` (regularized evolution, seed 0; cached): the found
    child's table accuracy next to the table optimum -- what a user of the super-net gets."""
    out = search_dir(args, run)
    if (out / "summary.json").exists():
        return json.loads((out / "summary.json").read_text())
    if not run_nas(["search", "--run", str(run), "--table", str(args.table), "--arch-column", "cellstr",
                    "--metric", args.metric, "--searcher", "evolutionary", "--budget", str(args.search_budget),
                    "--seed", "0", "--out", str(out), "--json"], timeout=left(args)):
        print(f"  search on {run.name} stopped at the deadline", flush=True)
        return None
    summary = json.loads((out / "summary.json").read_text())
    print(f"  searched {run.name}: found {summary['reference']['value']:.2f} "
          f"(optimum {summary['reference']['optimum']:.2f})", flush=True)
    return summary


def work(args, job: tuple) -> bool:
    """Train one super-net, rank it, search it with --search-budget; True once ranked."""
    run = train(args, *job)
    if run is None or rank_run(args, run) is None:
        return False
    if args.search_budget:
        search_run(args, run)
    return True


def lane(args, job: tuple) -> None:
    _modes.lane(args, job, work)


def coverage(summary: dict, steps: list[dict]) -> float:
    """Mean over slots of (least-trained option count / most-trained option count): from
    train_summary.json, or counted from the steps' archs for runs older than that record."""
    if "coverage" in summary:
        return summary["coverage"]["mean_min_max_ratio"]
    from nas import get_space

    space = get_space("nb201")
    archs = [space.parse(row["arch"]) for row in steps]
    ratios = []
    for i, slot in enumerate(space.slots):
        counts = Counter(a[i] for a in archs)
        ratios.append(min(counts.get(o, 0) for o in slot.options) / max(counts.values()))
    return statistics.mean(ratios)


def conv_tau(children: list[dict], key: str) -> float:
    """Kendall tau between ``key`` (estimate or ground_truth) and a child's number of convolution
    edges: the table rewards convolutions; an under-trained super-net favours parameter-free edges."""
    from scipy import stats

    convs = [c["arch"].count("nor_conv") for c in children]
    return float(stats.kendalltau([c[key] for c in children], convs).statistic)


def table_percentiles(args) -> dict[str, float]:
    """Each cell's share of the table it beats (the table read once per report)."""
    import bisect
    import csv

    with open(args.table, newline="") as f:
        values = {row["cellstr"]: float(row[args.metric]) for row in csv.DictReader(f)}
    ordered = sorted(values.values())
    return {a: bisect.bisect_left(ordered, v) / len(ordered) for a, v in values.items()}


def anchor_percentile(steps: list[dict], percentiles: dict[str, float]) -> float | None:
    """MAGIC-A's anchor as the table sees it: the mean table percentile of the anchor, sampled
    every 50 steps (rows of metrics.jsonl; None without an anchor). The anchor is chosen by the
    super-net's own dev score, so it is only as good as the estimates it is meant to improve."""
    anchors = [r["anchor"] for r in steps[::50] if r.get("anchor")]
    return statistics.mean(percentiles[a] for a in anchors) if anchors else None


def collect(args) -> dict:
    """Every finished, ranked super-net under --out, as rows."""
    rows = []
    percentiles = table_percentiles(args)
    for run in sorted((args.out / "runs").glob("*")):
        cfg_path, ranked = run / "config.json", rank_dir(args, run)
        if not (ranked / "rank.json").exists() or not cfg_path.exists():
            continue
        stored = json.loads(cfg_path.read_text())
        cfg = stored["train"]
        r = json.loads((ranked / "rank.json").read_text())
        summary = json.loads((run / "train_summary.json").read_text())
        steps = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]  # read once
        top1, top5 = regrets(r["children"])
        rows.append({"run": run.name, "mode": cfg["mode"], "steps": cfg["steps"], "seed": cfg["seed"],
                     "tag": run_tag(run.name, cfg["seed"]), "tau": r["kendall_tau"] or 0.0, "spearman": r["spearman"],
                     "top1_regret": top1, "top5_regret": top5,
                     "coverage": coverage(summary, steps), "seconds": summary["seconds"],
                     "device": stored.get("versions", {}).get("device", "cpu"),
                     "finished_on": summary.get("device"),
                     "final_loss": final_loss([row["task_loss"] for row in steps]),
                     "mean_estimate": statistics.mean(c["estimate"] for c in r["children"]),
                     "conv_tau": conv_tau(r["children"], "estimate"),
                     "table_conv_tau": conv_tau(r["children"], "ground_truth"),
                     "estimates": {c["arch"]: c["estimate"] for c in r["children"]},
                     "search": searched(run, args.metric),
                     "anchor_percentile": anchor_percentile(steps, percentiles)})
    return {"rows": rows}


def searched(run: Path, metric: str) -> dict | None:
    """The found child of the run's largest finished search, as the table sees it."""
    done = [(int(p.name.rsplit("-n", 1)[1]), p) for p in run.glob(f"search-{metric}-n*")
            if (p / "summary.json").exists()]
    if not done:
        return None
    budget, path = max(done)
    ref = json.loads((path / "summary.json").read_text())["reference"]
    return {"budget": budget, "value": ref["value"], "optimum": ref["optimum"], "regret": ref["regret"],
            "beats_fraction": ref["beats_fraction"]}


def report(args) -> None:
    data = collect(args)
    rows = data["rows"]
    lines = [f"# NAS-Bench-201 super-nets ranked against the table ({args.metric})", "",
             f"Children: {args.children} (sampled with seed 0, the same for every super-net); "
             f"estimates on the `{args.split}` split after BatchNorm recalibration on "
             f"{args.bn_recal_batches} training batches of 64. Preset `{args.preset}`; "
             f"runs: `{args.out}/runs`.", ""]
    groups = group_rows(rows)
    for (tag, steps), by_mode in sorted(groups.items()):
        base = {r["seed"]: r for r in baseline(groups, tag, steps)}
        lines += [f"## {steps} steps" + (f", recipe `{tag}`" if tag else ""), "", *mode_table(by_mode, base)]
        lines += baseline_note(by_mode, tag, base)
        lines += ["", *against_base_recipe(groups, tag, steps)] if "+" in tag else []
        anchored = {m: [r["anchor_percentile"] for r in rs if r["anchor_percentile"] is not None]
                    for m, rs in sorted(by_mode.items())}
        if any(anchored.values()):
            lines += ["", "MAGIC-A's anchors as the table sees them (share of the table each beats, sampled every "
                      "50 steps, mean over the run; 0.5 is an average cell): "
                      + ", ".join(f"{m} {statistics.mean(v):.2f} (runs {min(v):.2f}-{max(v):.2f})"
                                  for m, v in anchored.items() if v) + "."]
        any_run = next(r for rs in by_mode.values() for r in rs)
        lines += ["", f"tau(estimate, #conv): Kendall tau between a super-net's estimates and each "
                  f"child's number of convolution edges; the table's own is {any_run['table_conv_tau']:+.2f}."]
        devices = Counter((r["device"], r["finished_on"] or "?") for rs in by_mode.values() for r in rs)
        lines += ["", "Devices (started on -> finished on): "
                  + ", ".join(f"{a} -> {b} ({n} runs)" for (a, b), n in sorted(devices.items()))
                  + " (?: trained before train_summary.json recorded it; minutes are wall time, shared with the "
                  "other runs of the machine)."]
        lines += estimator_noise(by_mode.get("uniform", []))
        lines.append("")
    lines += search_table(groups)
    recipes = sorted({r["tag"] for r in rows if r["mode"] == "uniform"})
    for tag in recipes:  # a curve per recipe with at least two budgets
        curve = [r for r in rows if r["mode"] == "uniform" and r["tag"] == tag]
        by_steps: dict = {}
        for r in curve:
            by_steps.setdefault(r["steps"], []).append(r)
        if len(by_steps) < 2:
            continue
        lines += ["## Uniform: tau against the training budget" + (f", recipe `{tag}`" if tag else ""), "",
                  "| steps | seeds | Kendall tau | top-1 regret | loss (last 10%) | mean estimate |", "|---|---|---|---|---|---|"]
        for steps, rs in sorted(by_steps.items()):
            taus = [r["tau"] for r in rs]
            lines.append(f"| {steps} | {len(rs)} | {statistics.mean(taus):.3f}"
                         + (f" +- {statistics.stdev(taus):.3f}" if len(rs) > 1 else "")
                         + f" | {statistics.mean(r['top1_regret'] for r in rs):.2f} | "
                         f"{statistics.mean(r['final_loss'] for r in rs):.2f} | "
                         f"{statistics.mean(r['mean_estimate'] for r in rs):.3f} |")
        name = "tau_vs_budget" + (f"-{tag}" if tag else "") + ".png"
        _plot_curve(args.out / name, by_steps, args.metric, args.children)
        lines += ["", f"![tau vs budget]({name})", ""]
    (args.out / "tables.md").write_text("\n".join(lines) + "\n")
    slim = [{k: v for k, v in r.items() if k != "estimates"} for r in rows]
    (args.out / "results.json").write_text(json.dumps(
        {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
         "rows": slim}, indent=1) + "\n")
    print((args.out / "tables.md").read_text())


def search_table(groups: dict) -> list[str]:
    """What a search over each super-net finds, per mode and budget (runs with a finished search)."""
    lines = []
    for (tag, steps), by_mode in sorted(groups.items()):
        found = {m: [r for r in rs if r["search"]] for m, rs in by_mode.items()}
        if not any(found.values()):
            continue
        budget = next(r["search"]["budget"] for rs in found.values() for r in rs)
        lines += [f"## Search over the super-nets: {steps} steps" + (f", recipe `{tag}`" if tag else ""), "",
                  f"`nas search --run RUN --table TABLE` (regularized evolution, {budget} children scored "
                  "through the super-net, seed 0): the found child's table accuracy, the table optimum over "
                  "all 15,625 cells and the regret (optimum - found).", "",
                  "| mode | n runs (seeds) | found (mean +- std) | regret | share of the table it beats |",
                  "|---|---|---|---|---|"]
        for mode in MODES:
            rs = sorted(found.get(mode, []), key=lambda r: r["seed"])
            if not rs:
                continue
            vals = [r["search"]["value"] for r in rs]
            lines.append(f"| {mode} | {len(rs)} ({','.join(str(r['seed']) for r in rs)}) | "
                         f"{statistics.mean(vals):.2f}" + (f" +- {statistics.stdev(vals):.2f}" if len(vals) > 1 else "")
                         + f" | {statistics.mean(r['search']['regret'] for r in rs):.2f} | "
                         f"{statistics.mean(r['search']['beats_fraction'] for r in rs):.3f} |")
        optimum = next(r["search"]["optimum"] for rs in found.values() for r in rs)
        lines += ["", f"Table optimum: {optimum:.2f}.", ""]
    return lines


def _plot_curve(path: Path, by_steps: dict, metric: str, children: int) -> None:
    from nas.report import figure, save, style

    fig, ax = figure(5, 3.5)
    for steps, rs in sorted(by_steps.items()):
        ax.scatter([steps] * len(rs), [r["tau"] for r in rs], color="C0")
    xs = sorted(by_steps)
    ax.plot(xs, [statistics.mean(r["tau"] for r in by_steps[s]) for s in xs], color="C0")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_xticks(xs, [f"{x:,}" for x in xs])
    ax.minorticks_off()
    seeds = sorted({r["seed"] for rs in by_steps.values() for r in rs})
    style(ax, "super-net training steps (uniform)", f"Kendall tau vs table ({metric})",
          f"nb201: ranking vs budget (seeds {','.join(map(str, seeds))}, {children} children)")
    save(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/nb201-bench"))
    parser.add_argument("--data-dir", type=Path, default=SHARED / "cifar10-subset")
    parser.add_argument("--table", type=Path, default=SHARED / "nasbench201" / "nb201_12epoch.csv")
    parser.add_argument("--metric", default="cifar10-test", help="the table's column to rank against")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--seeds", type=parse_seeds, default="1", help="how many seeds (5: seeds 0-4) or a list (0,3,4)")
    parser.add_argument("--budgets", default="2000", help="super-net steps, comma-separated")
    parser.add_argument("--children", type=int, default=100)
    parser.add_argument("--split", default="dev", help="split the super-net scores children on")
    parser.add_argument("--bn-recal-batches", type=int, default=4)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--tag", default="", help="names a recipe (extra --train-args) in run names")
    parser.add_argument("--train-args", default="", help="extra `nas train` options, one string")
    parser.add_argument("--jobs", type=int, default=1, help="super-nets trained (and ranked) at once")
    parser.add_argument("--deadline", type=float, default=None,
                        help="minutes: start no job after, stop running ones then (they resume next time)")
    parser.add_argument("--search-budget", type=int, default=0,
                        help="also search each super-net (evolutionary, this many children) and report the "
                             "found child's table accuracy")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    args.train_args = args.train_args.split()
    args.deadline_at = time.time() + 60 * args.deadline if args.deadline is not None else None
    if args.train_args and not args.tag:
        parser.error("--train-args changes the recipe: name it with --tag")
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    if not args.report_only:
        seeds = args.seeds
        jobs = [(m, int(b), s) for b in args.budgets.split(",") for s in seeds for m in args.modes.split(",")]
        args.out.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(args.jobs) as pool:
            for future in [pool.submit(lane, args, job) for job in jobs]:
                future.result()
    report(args)


if __name__ == "__main__":
    main()
