"""``nas rank``: how well does a super-net rank children? Estimates vs standalone ground truth."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

from nas._errors import NasUsageError
from nas._rundir import atomic_write_json


def sample_children(space, n: int, seed: int, stratify: bool = False) -> list[tuple]:
    """``n`` distinct children; with ``stratify`` one per parameter-count quantile bin."""
    if n > space.size:
        raise NasUsageError(f"--children {n} exceeds the space's {space.size} children")
    rng = random.Random(seed)
    pool: dict[tuple, None] = {}
    want = n * 10 if stratify else n
    while len(pool) < min(want, space.size):
        pool[space.sample(rng)] = None
    archs = list(pool)
    if not stratify:
        return archs[:n]
    archs.sort(key=lambda a: space.cost(a).params)
    bins = [archs[i * len(archs) // n:(i + 1) * len(archs) // n] for i in range(n)]
    return [rng.choice(b) for b in bins]


def read_ground_truth(path: str | Path, split: str, metric: str) -> dict[str, float]:
    """A user's ground truth: JSON ``{arch: value}``, a list of ``{arch, ground_truth}``, a
    ground-truth cache file, or CSV with ``arch`` and ``ground_truth`` (or the metric) columns."""
    path = Path(path)
    if not path.exists():
        raise NasUsageError(f"ground-truth file not found: {path}")
    if path.suffix == ".csv":
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        col = next((c for c in ("ground_truth", metric, "value") if rows and c in rows[0]), None)
        if not rows or "arch" not in rows[0] or col is None:
            raise NasUsageError(f"{path} needs columns 'arch' and 'ground_truth' (or '{metric}')")
        return {r["arch"]: float(r[col]) for r in rows}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise NasUsageError(f"ground-truth file {path} is not valid JSON: {exc}") from None
    if isinstance(data, dict) and "results" in data:
        return {a: float(r[split][metric]) for a, r in data["results"].items()}
    if isinstance(data, dict):
        return {a: float(v) for a, v in data.items()}
    if isinstance(data, list):
        return {row["arch"]: float(row["ground_truth"]) for row in data}
    raise NasUsageError(f"{path}: expected {{arch: value}} or a list of {{arch, ground_truth}}")


def table_ground_truth(space, path: str | Path, archs: list[str], arch_column: str | None,
                       metric: str | None) -> dict[str, float]:
    """Each arch's value in a table of trained results; a missing arch is an error naming it."""
    from nas.evaluate._table import TableEvaluator

    if metric is None:
        raise NasUsageError("--arch-column needs --metric, the table's column of trained results "
                            "(e.g. --metric cifar10-test)")
    path = Path(path)
    if not path.is_file():
        raise NasUsageError(f"ground-truth table not found: {path}")
    table = TableEvaluator(type(space)(space.preset), path, metric, arch_column=arch_column,
                           greater_is_better=True, unique=True)
    truths = {}
    for a in archs:
        if a not in table:
            raise NasUsageError(f"child {a} is not in table {path} ({len(table):,} rows); give a "
                                "table that covers the space (or fewer --children)")
        truths[a] = table.evaluate(a)[table.primary_metric]
    return truths


def rank(run_dir: str | Path, children: int = 30, retrain_steps: int = 1000, seed: int = 0,
         ground_truth: str | Path | None = None, split: str = "dev", gt_seeds: int = 1,
         jobs: int = 1, cache_dir: str | Path | None = None, out: str | Path | None = None,
         top_k: int = 5, stratify: bool = False, bn_recal_batches: int | None = None,
         progress: bool = True, arch_column: str | None = None,
         metric: str | None = None) -> dict[str, Any]:
    """Rank ``children`` children of the super-net in ``run_dir`` against a ground truth.

    The ground truth is, in order: a table of trained results (``ground_truth`` a CSV with
    ``arch_column`` and ``metric`` columns, e.g. NAS-Bench-201's ``cellstr`` and ``cifar10-test``;
    no retraining), a file of ``{arch: value}`` (``ground_truth`` without those), or the children
    trained standalone for ``retrain_steps`` steps (cached, averaged over ``gt_seeds`` seeds).
    """
    from nas.evaluate._supernet import DEFAULT_BN_RECAL_BATCHES, SupernetEvaluator
    from nas.analysis._ground_truth import GroundTruth
    from nas.report._plots import scatter
    from nas.analysis._stats import ranking_report

    if children < 3:
        raise NasUsageError("--children must be at least 3 to compute rank correlations")
    ev = SupernetEvaluator(run_dir, split=split, bn_recal_batches=(
        DEFAULT_BN_RECAL_BATCHES if bn_recal_batches is None else bn_recal_batches))
    space, ev_metric = ev.space, ev.primary_metric
    archs = [space.encode(a) for a in sample_children(space, children, seed, stratify)]

    if ground_truth is not None and (arch_column or metric):
        truths = table_ground_truth(space, ground_truth, archs, arch_column, metric)
        gt_source = {"table": str(ground_truth), "arch_column": arch_column, "metric": metric}
    elif ground_truth is not None:
        truth_map = read_ground_truth(ground_truth, split, ev_metric)
        lacking = [a for a in archs if a not in truth_map]
        if lacking:
            archs = [a for a in truth_map][:children]  # rank the children the file has
            if len(archs) < 3:
                raise NasUsageError(f"{ground_truth} has {len(truth_map)} archs; need at least 3")
        truths = {a: truth_map[a] for a in archs}
        gt_source = str(ground_truth)
    else:
        c = ev.cfg
        options = {k: getattr(c, k) for k in ("data_dir", "tokenizer", "image_size", "task_seed",
                                              "batch_size", "lr", "ds_config")}
        truths = {a: 0.0 for a in archs}
        files = []
        for s in range(seed, seed + gt_seeds):
            gt = GroundTruth(c.space, c.preset, c.task, retrain_steps, s, cache_dir, options)
            gt.compute(archs, jobs=jobs, progress=progress)
            for a in archs:
                truths[a] += gt.value(a, split, ev_metric) / gt_seeds
            files.append(str(gt.path))
        gt_source = files

    estimates = {}
    from nas.report._progress import track

    for a in (track(archs, "super-net estimates", unit="children") if progress else archs):
        estimates[a] = ev.evaluate(a)[ev_metric]
    est = [estimates[a] for a in archs]
    tru = [truths[a] for a in archs]
    report = {
        "run": str(run_dir), "space": space.name, "task": ev.task.name, "metric": ev_metric,
        "split": split, "n": len(archs), "seed": seed, "retrain_steps": retrain_steps,
        "gt_seeds": gt_seeds, "ground_truth_source": gt_source,
        "bn_recal_batches": ev.bn_recal_batches, "device": str(ev.device),
        **ranking_report(est, tru, k=top_k, seed=seed),
        "children": [{"arch": a, "estimate": estimates[a], "ground_truth": truths[a]} for a in archs],
    }
    out = Path(out) if out else Path(run_dir) / "rank"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "rank.json", report)
    if isinstance(gt_source, dict):
        report["ground_truth_metric"] = metric
        report["optimum"] = max(tru)
    truth_label = (f"table: {metric}" if isinstance(gt_source, dict)
                   else f"standalone ({retrain_steps} steps)")
    scatter(out / "rank.png", est, tru, f"super-net estimate ({ev_metric}, {split})", truth_label,
            f"{space.name} {ev.cfg.mode}: Kendall tau {_fmt(report['kendall_tau'])}, n={len(archs)}")
    report["files"] = [str(out / "rank.json"), str(out / "rank.png")]
    return report


def _fmt(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3f}"
