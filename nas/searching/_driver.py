"""The search driver: a searcher proposes archs, an evaluator scores them, under a budget.

The budget counts **distinct** evaluated archs: an arch proposed again is answered from the cache
(never re-evaluated, never counted twice). Constraints (``max_params``/``max_macs``, from
``space.cost``) are checked before evaluating; searchers are expected to propose feasible archs and
an infeasible proposal is rejected without evaluation. Every finished evaluation is logged to the
output folder at once, and a rerun into the same folder resumes: earlier evaluations count toward
the budget and are told to the searcher instead of being evaluated again.

The evaluator is anything with the :class:`Evaluator` shape: the super-net evaluator of a trained
run, or :class:`~nas.evaluate.TableEvaluator` for tabular benchmarks such as NAS-Bench-201.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from nas._errors import NasUsageError
from nas._words import minimized
from nas.evaluate._base import Evaluator, evaluator_hook
from nas._registry import SEARCHERS
from nas.searching._out import SearchOut, _finite, _public
from nas.searching._searcher import Searcher, check_options
from nas.searching._workers import join_workers, start_workers
from nas.supernet._space import Arch, SearchSpace

MAX_MISSES = 1000  # consecutive proposals that lead to no evaluation before the driver gives up
POLL_SECONDS = 0.3  # wait between looks at a shared study whose last budget slots are taken


# ---- objectives and constraints -----------------------------------------------------------------
@dataclass(frozen=True)
class Objective:
    """One objective: ``params``, ``macs`` or a metric name, and its direction."""

    name: str
    maximize: bool

    @property
    def direction(self) -> str:
        return "maximize" if self.maximize else "minimize"

    def value(self, record: dict[str, Any]) -> float:
        v = record.get(self.name) if self.name in ("params", "macs") else record.get("metrics", {}).get(self.name)
        return float(v) if v is not None else math.nan


def parse_objectives(spec: str | Sequence[str] | None, evaluator: Evaluator) -> list[Objective]:
    """``"metric,params"`` -> objectives. ``metric``/``score`` mean the evaluator's primary metric;
    a ``:max``/``:min`` suffix sets a direction (default: metric as the evaluator says, costs min)."""
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec or ())
    items = [s for s in items if s] or ["metric"]
    known = evaluator_hook(evaluator, "metric_names")
    objectives: list[Objective] = []
    for item in items:
        name, _, direction = item.partition(":")
        name = name.strip()
        if name in ("metric", "score"):
            name = evaluator.primary_metric
        if name in ("params", "macs"):
            maximize = False
        elif name == evaluator.primary_metric:
            maximize = bool(evaluator.greater_is_better)
        else:
            if known is not None and name not in known:
                raise NasUsageError(
                    f"unknown objective '{name}'; choose from: metric, params, macs, {', '.join(known)}"
                )
            maximize = not minimized(name)
        direction = direction.strip().lower()
        if direction in ("max", "maximize"):
            maximize = True
        elif direction in ("min", "minimize"):
            maximize = False
        elif direction:
            raise NasUsageError(f"objective '{item}': direction must be max or min, e.g. params:min")
        if any(o.name == name for o in objectives):
            raise NasUsageError(f"objective '{name}' is given twice in --objectives")
        objectives.append(Objective(name, maximize))
    return objectives


def _cost(space: SearchSpace, arch: Arch) -> Any:
    """``space.cost(arch)``, or None for a space that has no networks and no cost table."""
    try:
        return space.cost(arch)
    except NotImplementedError:
        return None


class Constraints:
    """Upper bounds on a child's params and MACs; callable as the searchers' ``feasible(arch)``."""

    def __init__(self, space: SearchSpace, max_params: float | None = None, max_macs: float | None = None):
        self.space = space
        self.limits = {k: v for k, v in (("params", max_params), ("macs", max_macs)) if v is not None}
        for key, value in self.limits.items():
            if value <= 0:
                raise NasUsageError(f"--max-{key} must be positive, got {value:g}")

    @property
    def active(self) -> bool:
        return bool(self.limits)

    def check_space(self, needed: Sequence[str] = ()) -> None:
        """Fail early when constraints or objectives need costs the space cannot give."""
        wanted = sorted(set(self.limits) | set(needed))
        if not wanted:
            return
        cost = _cost(self.space, self.space.sample(random.Random(0)))
        missing = [k for k in wanted if cost is None or getattr(cost, k, None) is None]
        if missing:
            flags = ", ".join(f"--max-{k}" if k in self.limits else f"objective {k}" for k in missing)
            hint = (" (for a table, add a params/flops column)" if self.space.tabular
                    else "")
            raise NasUsageError(
                f"{flags} need(s) the {'/'.join(missing)} of each arch, but space '{self.space.name}' "
                f"has none{hint}; drop {flags}"
            )

    def check_reachable(self, console: Any = None) -> None:
        """Fail at once when no child can meet the bounds, instead of scanning the whole space.

        A table of costs (tabular spaces) is checked exactly. Otherwise the cheapest child is
        sought slot by slot: from one child, each slot takes in turn the option that brings the
        costs closest to the bounds; for costs that add up over slots (params always do: a child is
        the super-net's shared part plus one option per slot) this finds the smallest child, with
        at most 1 + sum(options - 1) cost measurements, and stops at the first feasible child.
        """
        if not self.limits:
            return
        table = self.space.table_costs
        if isinstance(table, dict) and table:
            if any(self._excess(c) <= 0 for c in table.values()):
                return
            arch, cost = min(table.items(), key=lambda kv: self._excess(kv[1]))
            self._unreachable(arch, cost, "among the table's")
        arch = list(self.space.sample(random.Random(0)))
        cost = self.space.cost(arch)
        if self._excess(cost) <= 0:
            return
        from nas.report._progress import LazyProgress

        total = sum(len(s.options) - 1 for s in self.space.slots)
        with LazyProgress("looking for a child within the constraints", total, console=console) as bar:
            for i, slot in enumerate(self.space.slots):
                base = arch[i]
                for option in slot.options:
                    if option == base:
                        continue
                    candidate = arch[:i] + [option] + arch[i + 1:]
                    c = self.space.cost(candidate)
                    bar.advance()
                    if self._excess(c) <= 0:
                        return
                    if self._excess(c) < self._excess(cost):
                        arch, cost = candidate, c
        self._unreachable(tuple(arch), cost, "found slot by slot among its")

    def _excess(self, cost: Any) -> float:
        """How far ``cost`` is beyond the bounds (relative; <= 0: within them)."""
        return sum(max(0.0, float(getattr(cost, k)) / float(v) - 1.0) for k, v in self.limits.items())

    def _unreachable(self, arch: Arch, cost: Any, how: str) -> None:
        flags = " and ".join(f"--max-{k} {v:,.0f}" for k, v in self.limits.items())
        has = ", ".join(f"{int(getattr(cost, k)):,} {k}" for k in self.limits)
        raise NasUsageError(
            f"no child of space '{self.space.name}' meets {flags}: the smallest child {how} "
            f"{self.space.size:,} children ({self.space.encode(arch)}) has {has}; loosen the constraint"
        )

    def violations(self, arch: Arch) -> dict[str, float]:
        """Amount by which each bound is exceeded (<= 0 means satisfied)."""
        if not self.limits:
            return {}
        cost = self.space.cost(arch)
        return {k: float(getattr(cost, k)) - float(v) for k, v in self.limits.items()}

    def __call__(self, arch: Arch) -> bool:
        return all(v <= 0 for v in self.violations(arch).values())

    def describe(self) -> dict[str, float]:
        return {f"max_{k}": v for k, v in self.limits.items()}


# ---- result -------------------------------------------------------------------------------------
@dataclass
class SearchResult:
    records: list[dict[str, Any]]
    objectives: list[Objective]
    best: dict[str, Any] | None
    pareto: list[dict[str, Any]]
    out: Path | None
    searcher: str
    budget: int
    stopped: str | None = None  # why the search ended before the budget, if it did
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """What ``nas search --json`` prints and ``summary.json`` holds."""
        summary: dict[str, Any] = {
            "best": _public(self.best) if self.best else None,
            "evaluations": len(self.records),
            "budget": self.budget,
            "searcher": self.searcher,
            "objectives": [{"name": o.name, "direction": o.direction} for o in self.objectives],
        }
        if len(self.objectives) > 1:
            summary["pareto"] = [_public(r) for r in self.pareto]
        if self.stopped:
            summary["stopped"] = self.stopped
        summary["out"] = str(self.out) if self.out else None
        summary.update(self.extra)
        return summary

    def top(self, k: int = 10) -> list[dict[str, Any]]:
        """The ``k`` best feasible records by score."""
        return sorted(_ranked(self.records), key=lambda r: _sort_key(r, self.objectives[0]))[:k]


def _ranked(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("_feasible", True) and _finite(r.get("score"))]


def _sort_key(record: dict[str, Any], objective: Objective) -> float:
    return -record["score"] if objective.maximize else record["score"]


def pareto_front(records: list[dict[str, Any]], objectives: Sequence[Objective]) -> list[dict[str, Any]]:
    """Non-dominated feasible records, sorted by the first objective (best first)."""
    import numpy as np

    pool = [r for r in _ranked(records) if all(_finite(r["values"][i]) for i in range(len(objectives)))]
    if not pool:
        return []
    signs = np.array([-1.0 if o.maximize else 1.0 for o in objectives])
    pts = np.array([r["values"] for r in pool], dtype=float) * signs  # minimise everything
    keep = []
    for i, p in enumerate(pts):
        dominated = np.any(np.all(pts <= p, axis=1) & np.any(pts < p, axis=1))
        if not dominated:
            keep.append(pool[i])
    return sorted(keep, key=lambda r: _sort_key(r, objectives[0]))


# ---- the driver ---------------------------------------------------------------------------------
def search(
    evaluator: Evaluator,
    searcher: str | Searcher = "evolutionary",
    budget: int = 100,
    *,
    seed: int = 0,
    max_params: float | None = None,
    max_macs: float | None = None,
    objectives: str | Sequence[str] | None = None,
    out: str | Path | None = None,
    options: dict[str, Any] | None = None,
    workers: int = 1,
    evaluator_factory: Callable[[], Evaluator] | None = None,
    console: Any = None,
    reference: Any = None,
) -> SearchResult:
    """Search ``evaluator.space`` with ``searcher`` until ``budget`` distinct archs are evaluated.

    ``searcher`` is a registered name (``options`` go to its constructor) or a ready instance.
    ``out`` is the output folder (resumed when it holds an earlier search). ``workers > 1`` starts
    that many processes in total sharing one study (searchers whose ``shares_work(options)`` is
    true, i.e. Optuna on a storage); each builds its own evaluator with ``evaluator_factory``.
    ``console`` (a rich Console) shows a progress bar. ``reference`` (a :class:`TableEvaluator` of
    trained results, e.g. NAS-Bench-201's table when searching an nb201 super-net) looks the found
    arch up: the summary's ``reference`` holds its table value next to the table's optimum.
    """
    if not isinstance(budget, int) or budget < 1:
        raise NasUsageError(f"--budget must be a positive number of archs, got {budget}")
    if not isinstance(workers, int) or workers < 1:
        raise NasUsageError(f"--workers must be at least 1, got {workers}")
    space = evaluator.space
    objs = parse_objectives(objectives, evaluator)
    constraints = Constraints(space, max_params, max_macs)
    constraints.check_space([o.name for o in objs if o.name in ("params", "macs")])

    constraints.check_reachable(console)

    name, cls, options = _resolve_searcher(searcher, dict(options or {}), out, workers, evaluator_factory)
    settings = {
        "space": space.name,
        "metric": evaluator.primary_metric,
        "source": _source(evaluator),
        "searcher": name,
        "options": {k: _redact(v) for k, v in options.items()},
        "seed": seed,
        "budget": budget,
        "objectives": [f"{o.name}:{'max' if o.maximize else 'min'}" for o in objs],
        "constraints": constraints.describe(),
    }
    # Everything is checked before anything existing is changed: the folder is only read here,
    # earlier archs are parsed, the searcher is built; then ``commit`` writes the first file.
    sink = SearchOut(out, settings) if out is not None else None
    try:
        earlier = sink.load() if sink is not None else []
        for raw in earlier:
            try:
                space.parse(raw["arch"])
            except NasUsageError as exc:
                raise NasUsageError(f"{sink.csv_path} holds an arch of another space ({exc}); "
                                    "choose another --out") from None
        instance = _build_searcher(name, cls, options, space, seed, constraints, objs)
    except BaseException:
        if sink is not None:
            sink.close()
        raise
    run = _Run(evaluator, instance, objs, constraints, budget, console)
    run.out = sink
    procs: list[Any] = []
    aborted = False
    try:
        if sink is not None:
            sink.commit()
            run.resume(earlier)
        if workers > 1:
            procs = start_workers(search, workers - 1, evaluator_factory, name, options, budget, seed,
                                  max_params, max_macs, settings["objectives"])
        run.loop()
    except BaseException:
        aborted = True
        raise
    finally:
        try:
            if procs:
                join_workers(procs, abort=aborted)
                run.sync()  # what the other workers finished last
        finally:
            try:
                result = run.result(name, sink)
                if reference is not None and result.best:
                    result.extra["reference"] = reference.reference(result.best["arch"])
            finally:
                instance.close()
            if sink is not None:
                sink.finish(run.records, result.summary(), objs, result.pareto)
                sink.close()
    return result


def _resolve_searcher(searcher, options, out, workers, evaluator_factory):
    """(name, class or instance, options) of the searcher, with out-folder defaults and checked
    options; builds nothing and writes nothing."""
    if isinstance(searcher, Searcher):
        if options or workers > 1:
            raise NasUsageError("pass options and workers > 1 with a searcher name, not an instance")
        return searcher.name or type(searcher).__name__, searcher, options
    cls = SEARCHERS.get(searcher)
    if out is not None:
        options = {**cls.defaults_for_out(Path(out)), **options}
    if workers > 1:
        if not cls.shares_work(options):
            raise NasUsageError(
                f"searcher '{searcher}' cannot share work between --workers with these options; use "
                "--workers 1, or --searcher optuna with a storage (--storage, or the default in --out)"
            )
        if evaluator_factory is None:
            raise NasUsageError("workers > 1 needs an evaluator_factory to build each worker's evaluator")
    check_options(cls, options)
    return searcher, cls, options


def _build_searcher(name, cls, options, space, seed, constraints, objs) -> Searcher:
    """The searcher instance (the --out folder exists by now: a searcher may keep its state there)."""
    if isinstance(cls, Searcher):
        return cls
    return cls(space, seed=seed, feasible=constraints, maximize=objs[0].maximize,
               directions=[o.direction for o in objs], **options)


def _redact(value: Any) -> Any:
    """Hide the password of a storage URL before it is written to search.json."""
    from nas.searching._searcher import redact_url

    return redact_url(value) if isinstance(value, str) else value


def _source(evaluator: Any) -> str:
    info = evaluator_hook(evaluator, "describe")() or {}
    if info.get("estimator"):  # a zero-cost estimator: what it scores with, said in one line
        return (f"estimator {info['estimator']} on {info['space']} {info['preset']} "
                f"(task {info['task']}, seed {info['seed']}, batch {info['batch_size']})")
    for key in ("table", "run", "run_dir"):
        if info.get(key):
            return str(Path(info[key]).resolve())
    run_dir = evaluator_hook(evaluator, "run_dir")
    return str(Path(run_dir).resolve()) if run_dir else type(evaluator).__name__


class _Run:
    """State of one search: the records (arch cache), the loop, progress and logging."""

    def __init__(self, evaluator: Evaluator, searcher: Searcher, objectives: list[Objective],
                 constraints: Constraints, budget: int, console: Any):
        self.evaluator = evaluator
        self.space = evaluator.space
        self.searcher = searcher
        self.objectives = objectives
        self.constraints = constraints
        self.budget = budget
        self.console = console
        self.records: list[dict[str, Any]] = []
        self.by_arch: dict[Arch, dict[str, Any]] = {}
        self.best: dict[str, Any] | None = None
        self.out: SearchOut | None = None
        self.stopped: str | None = None
        self._progress = None
        self._task = None
        self._checked_metrics = False
        self._wait_reason: str | None = None

    # ---- records ------------------------------------------------------------------------------
    def _complete(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Fill score, objective values and feasibility of a raw record (arch, metrics, costs)."""
        arch = self.space.parse(raw["arch"])
        record = {
            "index": len(self.records) + 1,
            "arch": self.space.encode(arch),
            "score": None,
            "params": raw.get("params"),
            "macs": raw.get("macs"),
            "time": raw.get("time"),
            "metrics": dict(raw.get("metrics") or {}),
        }
        record["values"] = [o.value(record) for o in self.objectives]
        record["score"] = record["values"][0]
        if self.constraints.active:
            record["_feasible"] = all(
                record.get(k) is not None and record[k] <= v for k, v in self.constraints.limits.items()
            )
        return record

    def _add(self, arch: Arch, record: dict[str, Any], log: bool = True) -> None:
        self.records.append(record)
        self.by_arch[arch] = record
        self.searcher.seen[arch] = record["score"]
        if record.get("_feasible", True) and _finite(record["score"]) and (
            self.best is None or self.searcher.better(record["score"], self.best["score"])
        ):
            self.best = record
        if log and self.out is not None:
            self.out.append(record, self.records)
        self._advance()

    def resume(self, earlier: list[dict[str, Any]]) -> None:
        for raw in earlier:
            arch = self.space.parse(raw["arch"])
            if arch in self.by_arch:
                continue
            record = self._complete(raw)
            self._add(arch, record, log=False)
            self.searcher.tell(arch, record["score"], record)

    def sync(self) -> None:
        for raw in self.searcher.sync():
            arch = self.space.parse(raw["arch"])
            if arch not in self.by_arch:
                self._add(arch, self._complete(raw))

    def _evaluate(self, arch: Arch) -> dict[str, Any]:
        cost = _cost(self.space, arch)
        start = time.perf_counter()
        metrics = self.evaluator.evaluate(arch)
        seconds = time.perf_counter() - start
        if not self._checked_metrics:
            self._checked_metrics = True
            missing = [o.name for o in self.objectives
                       if o.name not in ("params", "macs") and o.name not in metrics]
            if missing:
                raise NasUsageError(
                    f"objective(s) {', '.join(missing)} are not metrics of the evaluator; choose from: "
                    f"metric, params, macs, {', '.join(metrics)}"
                )
        return self._complete({
            "arch": arch,
            "metrics": {k: float(v) for k, v in metrics.items()},
            "params": getattr(cost, "params", None),
            "macs": getattr(cost, "macs", None),
            "time": round(seconds, 6),
        })

    # ---- loop ---------------------------------------------------------------------------------
    def loop(self) -> None:
        searcher, misses = self.searcher, 0
        self._start_progress()
        try:
            while True:
                self.sync()
                if len(self.records) >= self.budget:
                    return
                used = searcher.shared_used()
                if used is not None and used >= self.budget:
                    # Other workers hold the last slots: say so (a dead worker's trial on another
                    # host comes back after its heartbeat grace period).
                    self._waiting(f"waiting for {used - len(self.records)} evaluation(s) running in "
                                  "other workers")
                    time.sleep(POLL_SECONDS)
                    continue
                self._waiting(None)
                if misses >= MAX_MISSES:
                    self.stopped = (f"searcher proposed {MAX_MISSES} archs in a row that were already "
                                    "evaluated or infeasible")
                    return
                arch = searcher.ask()
                if arch is None:
                    self.stopped = "searcher has no new feasible arch to propose (space exhausted)"
                    return
                arch = self.space.parse(arch)
                if arch in self.by_arch:
                    record = self.by_arch[arch]
                    searcher.tell_cached(arch, record["score"], record)
                    misses += 1
                    continue
                if not self.constraints(arch):
                    searcher.reject(arch, "infeasible")
                    misses += 1
                    continue
                claim = searcher.claim(arch, self.budget)
                if claim.status == "done":
                    self._add(arch, self._complete(claim.record))
                    misses += 1
                    continue
                if claim.status in ("busy", "full"):
                    misses += claim.status == "busy"
                    if claim.status == "full":
                        time.sleep(POLL_SECONDS)
                    continue
                try:
                    record = self._evaluate(arch)
                except BaseException:
                    searcher.reject(arch, "error")
                    raise
                self._add(arch, record)
                searcher.tell(arch, record["score"], record)
                misses = 0
        finally:
            self._stop_progress()

    # ---- progress -----------------------------------------------------------------------------
    def _start_progress(self) -> None:
        if self.console is None:
            return
        from rich.progress import TextColumn

        from nas.report._progress import make_progress

        self._progress = make_progress(TextColumn("{task.description}"), label="[bold]search[/]",
                                       unit="archs", console=self.console)
        self._progress.start()
        self._task = self._progress.add_task(self._description(), total=self.budget,
                                             completed=min(len(self.records), self.budget))

    def _waiting(self, why: str | None) -> None:
        """Show why the search waits (once on stderr without a progress bar); None: not waiting."""
        if why == self._wait_reason:
            return
        self._wait_reason = why
        if self._progress is not None:
            self._progress.update(self._task, description=why or self._description())
        elif why is not None and self.console is not None:
            self.console.print(why, style="dim", highlight=False)

    def _description(self) -> str:
        if self._wait_reason:
            return self._wait_reason
        if self.best is None:
            return "best -"
        return f"best {self.objectives[0].name} {self.best['score']:.4g}"

    def _advance(self) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=min(len(self.records), self.budget),
                                  description=self._description())

    def _stop_progress(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    # ---- result -------------------------------------------------------------------------------
    def result(self, name: str, sink: SearchOut | None) -> SearchResult:
        pareto: list[dict[str, Any]] = []
        if len(self.objectives) > 1:
            archs = self.searcher.pareto()
            if archs is not None and all(self.space.parse(a) in self.by_arch for a in archs):
                pareto = sorted((self.by_arch[self.space.parse(a)] for a in archs),
                                key=lambda r: _sort_key(r, self.objectives[0]))
            else:
                pareto = pareto_front(self.records, self.objectives)
        return SearchResult(
            records=self.records, objectives=self.objectives, best=self.best, pareto=pareto,
            out=sink.path.resolve() if sink else None, searcher=name, budget=self.budget, stopped=self.stopped,
        )
