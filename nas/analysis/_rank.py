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


def rank(run_dir: str | Path | None = None, children: int = 30, retrain_steps: int = 1000,
         seed: int = 0, ground_truth: str | Path | None = None, split: str = "dev", gt_seeds: int = 1,
         jobs: int = 1, cache_dir: str | Path | None = None, out: str | Path | None = None,
         top_k: int = 5, stratify: bool = False, bn_recal_batches: int | None = None,
         progress: bool = True, arch_column: str | None = None, metric: str | None = None,
         estimator: str | None = None, space: str | None = None, preset: str | None = None,
         task: str | None = None, data_dir: str | None = None,
         estimator_batch_size: int = 64) -> dict[str, Any]:
    """Rank ``children`` children by an estimator and compare with a ground truth.

    The estimator is the super-net in ``run_dir`` (``estimator="supernet"``, the default with a
    RUN), a zero-cost estimator (``params``, ``synflow``, ... on ``space``/``preset``/``task``, no
    run needed), or an ensemble ``"A+B"`` ranking by the mean of its members' ranks. The ground
    truth is, in order: a table of trained results (``ground_truth`` a CSV with ``arch_column``
    and ``metric`` columns, e.g. NAS-Bench-201's ``cellstr`` and ``cifar10-test``; no
    retraining), a file of ``{arch: value}`` (``ground_truth`` without those), or the children
    trained standalone for ``retrain_steps`` steps (cached, averaged over ``gt_seeds`` seeds).
    Unless ``params`` is the estimator, the report also holds what ``params`` gets on the same
    children (``baselines``), the free yardstick.
    """
    from nas.analysis._ground_truth import GroundTruth
    from nas.evaluate import SUPERNET, parse_estimators

    if children < 3:
        raise NasUsageError("--children must be at least 3 to compute rank correlations")
    spec = estimator or (SUPERNET if run_dir is not None else None)
    if spec is None:
        raise NasUsageError("nothing to rank with: give a RUN (a `nas train` folder), or --estimator "
                            "NAME with --space (e.g. --estimator params --space nb201)")
    names = parse_estimators(spec)
    if SUPERNET in names and run_dir is None:
        raise NasUsageError(f"--estimator {spec} uses the super-net's estimates: give a RUN "
                            "(a `nas train` folder)")
    source = _Source(run_dir, names, space, preset, task, data_dir, split, bn_recal_batches, seed,
                     estimator_batch_size)
    space_obj, ev_metric = source.space, source.metric
    out = Path(out) if out else _default_out(run_dir, spec, space_obj.name)
    if out.exists() and not out.is_dir():  # refused before any work
        raise NasUsageError(f"--out {out} is a file; give a folder (it receives rank.json and rank.png)")
    archs = [space_obj.encode(a) for a in sample_children(space_obj, children, seed, stratify)]

    if ground_truth is not None and (arch_column or metric):
        truths = table_ground_truth(space_obj, ground_truth, archs, arch_column, metric)
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
        truths = {a: 0.0 for a in archs}
        files = []
        for s in range(seed, seed + gt_seeds):
            gt = GroundTruth(source.space_name, source.preset, source.task_name, retrain_steps, s,
                             cache_dir, source.train_options())
            gt.compute(archs, jobs=jobs, progress=progress)
            for a in archs:
                truths[a] += gt.value(a, split, ev_metric) / gt_seeds
            files.append(str(gt.path))
        gt_source = files

    per_estimator = {n: source.scores(n, archs, progress) for n in names}
    est = _combine([per_estimator[n] for n in names], [source.greater_is_better(n) for n in names])
    tru = [truths[a] for a in archs]
    from nas.analysis._stats import ranking_report

    report = {
        "run": None if run_dir is None else str(run_dir), "estimator": spec, "space": space_obj.name,
        "preset": space_obj.preset, "task": source.task_name, "metric": ev_metric,
        "split": split, "n": len(archs), "seed": seed, "retrain_steps": retrain_steps,
        "gt_seeds": gt_seeds, "ground_truth_source": gt_source, **source.settings(),
        **ranking_report(est, tru, k=top_k, seed=seed),
        "estimator_seconds": {n: source.seconds.get(n) for n in names},
        "children": [{"arch": a, "estimate": e, "ground_truth": truths[a],
                      **({n: per_estimator[n][i] for n in names} if len(names) > 1 else {})}
                     for i, (a, e) in enumerate(zip(archs, est))],
    }
    if spec != "params":  # the free baseline on the same children, beside every ranking
        params = source.scores("params", archs, progress=False)
        base = ranking_report(params, tru, k=top_k, seed=seed)
        report["baselines"] = {"params": {k: base[k] for k in (
            "kendall_tau", "kendall_tau_ci", "spearman", "spearman_ci", "top1_regret", f"top{top_k}_regret")}}
    if isinstance(gt_source, dict):
        report["ground_truth_metric"] = metric
        report["optimum"] = max(tru)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "rank.json", report)
    from nas.report._plots import scatter

    truth_label = (f"table: {metric}" if isinstance(gt_source, dict)
                   else "ground truth" if isinstance(gt_source, str)
                   else f"standalone ({retrain_steps} steps)")
    what = source.label(spec)
    scatter(out / "rank.png", est, tru, what, truth_label,
            f"{space_obj.name} {spec}: Kendall tau {_fmt(report['kendall_tau'])}, n={len(archs)}, "
            f"seed {seed}")
    report["files"] = [str(out / "rank.json"), str(out / "rank.png")]
    return report


def _default_out(run_dir, spec: str, space: str) -> Path:
    if run_dir is not None:
        return Path(run_dir) / ("rank" if spec == "supernet" else f"rank-{spec}")
    return Path(f"rank-{space}-{spec}")


def _combine(columns: list[list[float]], greater: list[bool]) -> list[float]:
    """One estimator's scores as they are; an ensemble's: the mean of its members' ranks
    (1 = worst; ties share their mean rank), each member oriented so that higher is better."""
    if len(columns) == 1:
        return list(columns[0])
    from scipy.stats import rankdata

    ranks = [rankdata(c if g else [-v for v in c]) for c, g in zip(columns, greater)]
    return [float(sum(r[i] for r in ranks) / len(ranks)) for i in range(len(columns[0]))]


class _Source:
    """Where a ranking's estimates come from: a super-net run and/or zero-cost estimators on the
    run's (or the given) space and task."""

    def __init__(self, run_dir, names, space, preset, task, data_dir, split, bn_recal_batches, seed,
                 batch_size):
        from nas._registry import SPACES
        from nas.evaluate import SUPERNET, ZeroCostEvaluator

        self.seed, self.batch_size, self.split = seed, batch_size, split
        self.supernet = None
        self.zero_cost: dict[str, Any] = {}
        self.seconds: dict[str, float] = {}
        if run_dir is not None:
            from nas.evaluate._supernet import DEFAULT_BN_RECAL_BATCHES, SupernetEvaluator
            from nas._rundir import load_run_config

            stored = load_run_config(Path(run_dir))
            for given, key in ((space, "space"), (preset, "preset"), (task, "task")):
                if given is not None and given != stored.get(key):
                    raise NasUsageError(f"--{key} {given} differs from the run's {key} "
                                        f"'{stored.get(key)}' ({run_dir}); drop --{key} or give a "
                                        "run of that " + key)
            if data_dir is not None:
                raise NasUsageError("--data-dir goes with --space; a RUN knows its data")
            self.supernet = SupernetEvaluator(run_dir, split=split, bn_recal_batches=(
                DEFAULT_BN_RECAL_BATCHES if bn_recal_batches is None else bn_recal_batches))
            self.cfg = self.supernet.cfg
            self.space, self.task = self.supernet.space, self.supernet.task
            self.space_name, self.preset, self.task_name = self.cfg.space, self.cfg.preset, self.cfg.task
            self.metric = self.supernet.primary_metric
        else:
            if space is None:
                raise NasUsageError(f"--estimator {'+'.join(names)} without a RUN needs --space "
                                    f"(choose from: {', '.join(SPACES.names())})")
            if bn_recal_batches is not None:
                raise NasUsageError("--bn-recal-batches goes with a RUN (a super-net); zero-cost "
                                    "estimators score freshly initialised children")
            self.cfg = None
            self.space_name, self.preset = space, preset or "tiny"
            self.task_name = task or SPACES.get(space).default_task
            self.data_dir = data_dir
            from nas._registry import ESTIMATORS

            # The one that needs data first: it builds the task, and the space fitted to it.
            lead = next((n for n in names if ESTIMATORS.get(n).needs_data), names[0])
            first = ZeroCostEvaluator(lead, space,
                                      self.preset, task=task, data_dir=data_dir, seed=seed,
                                      batch_size=batch_size)
            self.zero_cost[first.name] = first
            self.space, self.task = first.space, first.task
            self.metric = self.task.primary_metric if self.task is not None else "accuracy"
        for n in names:
            self._zero_cost(n)

    def _zero_cost(self, name: str):
        from nas.evaluate import SUPERNET, ZeroCostEvaluator

        if name == SUPERNET:
            return None
        if name not in self.zero_cost:
            self.zero_cost[name] = ZeroCostEvaluator(
                name, self.space, self.preset, task=self.task_name, seed=self.seed,
                batch_size=self.batch_size, task_obj=self.task)
        return self.zero_cost[name]

    def evaluator(self, name: str):
        """The super-net evaluator for ``supernet``, else the zero-cost one of that name."""
        from nas.evaluate import SUPERNET

        return self.supernet if name == SUPERNET else self._zero_cost(name)

    def greater_is_better(self, name: str) -> bool:
        return self.evaluator(name).greater_is_better

    def scores(self, name: str, archs: list[str], progress: bool) -> list[float]:
        import time

        from nas.report._progress import track

        ev = self.evaluator(name)
        label = "super-net estimates" if name == "supernet" else f"{name} scores"
        start = time.perf_counter()
        values = [ev.evaluate(a)[ev.primary_metric]
                  for a in (track(archs, label, unit="children") if progress else archs)]
        self.seconds[name] = time.perf_counter() - start
        return values

    def train_options(self) -> dict[str, Any]:
        if self.cfg is not None:
            return {k: getattr(self.cfg, k) for k in ("data_dir", "tokenizer", "image_size",
                                                      "task_seed", "batch_size", "lr", "ds_config")}
        return {"data_dir": self.data_dir}

    def settings(self) -> dict[str, Any]:
        out: dict[str, Any] = {"estimator_batch_size": self.batch_size if self.zero_cost else None}
        if self.supernet is not None:
            out.update(bn_recal_batches=self.supernet.bn_recal_batches, device=str(self.supernet.device),
                       channels_last=self.supernet.channels_last)
        return out

    def label(self, spec: str) -> str:
        if spec == "supernet":
            return f"super-net estimate ({self.metric}, {self.split})"
        return f"{spec} ({'mean rank' if '+' in spec else 'score'})"


def _fmt(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3f}"
