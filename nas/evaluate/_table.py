"""Evaluate archs by looking them up in a CSV table of trained results (e.g. NAS-Bench-201).

A table evaluator has the same interface as the super-net evaluator (``space``, ``primary_metric``,
``greater_is_better``, ``evaluate``, ``evaluate_many``), so every searcher can be benchmarked against
ground truth in seconds. Column names differ between releases of the same benchmark (the 12-epoch
mini table says ``cellstr``/``cifar10-test``, NATS-Bench exports say e.g. ``arch_str``/
``cifar10_test``): the arch column is detected from its values and metric names match loosely.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path
from typing import Any, Sequence

from nas._errors import NasUsageError
from nas._words import minimized
from nas.evaluate._base import Evaluator
from nas.supernet._space import Arch, Cost, SearchSpace

_INDEX_COLUMNS = {"", "arch", "index", "idx", "id", "archindex", "archidx", "unnamed0"}
_PARAMS_COLUMNS = {"params", "param", "numparams", "nparams", "parameters", "paramsm", "paramsmb"}
_MACS_COLUMNS = {"macs", "mac", "macsm", "mmacs", "flops", "flop", "mflops", "flopsm"}


def _norm(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


class TableEvaluator(Evaluator):
    """Metrics of archs read from a CSV table with one row per arch (rows of one arch averaged).

    ``metric`` names the column to optimise (case and punctuation are ignored when matching);
    ``arch_column`` the column of arch strings (detected when None). Numeric params and FLOPs/MACs
    columns become the space's costs when the space is tabular (NAS-Bench-201 reports them in
    millions, which are converted to counts). ``unique``: an arch on two rows is an error instead
    of being averaged (a ground truth must say one value per arch).
    """

    def __init__(
        self,
        space: SearchSpace | str,
        path: str | Path,
        metric: str | None,
        arch_column: str | None = None,
        greater_is_better: bool | None = None,
        unique: bool = False,
    ):
        if isinstance(space, str):
            from nas._registry import get_space

            space = get_space(space)
        self.space = space
        self.path = Path(path)
        self.unique = unique
        header, rows = _read_csv(self.path)
        self.columns = header
        self.arch_column = self._find_arch_column(header, rows, arch_column)
        arch_index = header.index(self.arch_column)
        numeric = [i for i, name in enumerate(header)
                   if i != arch_index and _norm(name) not in _INDEX_COLUMNS
                   and all(_float(r[i]) is not None for r in rows if i < len(r) and r[i].strip())]
        if metric is None:
            raise NasUsageError(
                f"give --metric, the column of {self.path} to optimise; numeric columns: "
                f"{', '.join(header[i] for i in numeric)}"
            )
        self.primary_metric = self._find_metric(header, numeric, metric, rows)
        self.greater_is_better = (
            greater_is_better if greater_is_better is not None
            else not minimized(_norm(self.primary_metric))
        )
        params_col = next((i for i in numeric if _norm(header[i]) in _PARAMS_COLUMNS), None)
        macs_col = next((i for i in numeric if _norm(header[i]) in _MACS_COLUMNS), None)
        self.metric_names = [header[i] for i in numeric if i not in (params_col, macs_col)]
        self._table = self._aggregate(rows, arch_index, numeric)
        self.costs = self._costs(params_col, macs_col, numeric)
        space.set_table_costs(self.costs)

    # ---- loading ------------------------------------------------------------------------------
    def _parses(self, value: str) -> bool:
        try:
            self.space.parse(value)
            return True
        except (NasUsageError, ValueError, TypeError):
            return False

    def _find_arch_column(self, header: list[str], rows: list[list[str]], given: str | None) -> str:
        if given is not None:
            if given not in header:
                raise NasUsageError(
                    f"table {self.path} has no column '{given}'; columns: {', '.join(header)}"
                )
            return given
        probe = rows[:20]
        for i, name in enumerate(header):
            values = [r[i] for r in probe if i < len(r) and r[i].strip()]
            if values and not all(_float(v) is not None for v in values) and all(map(self._parses, values)):
                return name
        raise NasUsageError(
            f"no column of table {self.path} holds arch strings of space '{self.space.name}'; "
            f"name it with --arch-column (columns: {', '.join(header)})"
        )

    def _find_metric(self, header: list[str], numeric: list[int], metric: str,
                     rows: list[list[str]] | None = None) -> str:
        names = [header[i] for i in numeric]
        if metric in names:
            return metric
        if metric in header and rows:
            i = header.index(metric)
            line, bad = next((n, r[i]) for n, r in enumerate(rows, start=2)
                             if i < len(r) and r[i].strip() and _float(r[i]) is None)
            raise NasUsageError(
                f"column '{metric}' of table {self.path} is not numeric (line {line}: '{bad}'); "
                f"fix the value or choose --metric from: {', '.join(names)}")
        loose = [n for n in names if _norm(n) == _norm(metric)]
        if len(loose) == 1:
            return loose[0]
        raise NasUsageError(
            f"table {self.path} has no numeric column '{metric}'; choose --metric from: "
            f"{', '.join(names)}"
        )

    def _aggregate(self, rows: list[list[str]], arch_index: int, numeric: list[int]) -> dict[Arch, dict[str, float]]:
        sums: dict[Arch, list[list[float]]] = {}
        for line, row in enumerate(rows, start=2):
            if len(row) <= arch_index or not row[arch_index].strip():
                continue
            try:
                arch = self.space.parse(row[arch_index])
            except NasUsageError as exc:
                raise NasUsageError(f"table {self.path} line {line}: {exc}") from None
            values = [_float(row[i]) if i < len(row) and row[i].strip() else math.nan for i in numeric]
            if self.unique and arch in sums:
                raise NasUsageError(
                    f"table {self.path} line {line}: arch {self.space.encode(arch)} appears twice; "
                    "a ground truth needs one row per arch (average the runs first)")
            sums.setdefault(arch, []).append(values)
        names = [self.columns[i] for i in numeric]
        table = {}
        for arch, runs in sums.items():
            means = runs[0] if len(runs) == 1 else [sum(col) / len(col) for col in zip(*runs)]
            table[arch] = dict(zip(names, means))
        return table

    def _costs(self, params_col: int | None, macs_col: int | None, numeric: list[int]) -> dict[Arch, Cost] | None:
        if params_col is None and macs_col is None:
            return None

        def scale(col: int | None) -> float:
            if col is None:
                return 0.0
            top = max((m[self.columns[col]] for m in self._table.values()), default=0.0)
            return 1e6 if top < 1e4 else 1.0  # benchmark tables report millions

        p_scale, m_scale = scale(params_col), scale(macs_col)
        costs = {}
        for arch, m in self._table.items():
            params = round(m[self.columns[params_col]] * p_scale) if params_col is not None else None
            macs = round(m[self.columns[macs_col]] * m_scale) if macs_col is not None else None
            costs[arch] = Cost(params, params, macs)
        return costs

    # ---- evaluator interface ------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, arch: Sequence[str] | str) -> bool:
        return self.space.parse(arch) in self._table

    def evaluate(self, arch: Sequence[str] | str) -> dict[str, float]:
        arch = self.space.parse(arch)
        row = self._table.get(arch)
        if row is None:
            raise NasUsageError(
                f"arch {self.space.encode(arch)} is not in table {self.path} ({len(self._table):,} of "
                f"the space's {self.space.size:,} archs); the table must cover the whole space"
            )
        return {name: row[name] for name in self.metric_names}

    def evaluate_many(self, archs: Sequence[Sequence[str] | str]) -> list[dict[str, float]]:
        return [self.evaluate(a) for a in archs]

    def optimum(self, metric: str | None = None) -> tuple[str, float]:
        """The best arch of the whole table and its value (ground truth for benchmarks)."""
        metric = metric or self.primary_metric
        pick = max if self.greater_is_better else min
        arch, row = pick(self._table.items(), key=lambda kv: kv[1][metric])
        return self.space.encode(arch), row[metric]

    def describe(self) -> dict[str, Any]:
        return {"kind": "table", "table": str(self.path), "metric": self.primary_metric,
                "arch_column": self.arch_column}

    def reference(self, arch: Sequence[str] | str) -> dict[str, Any]:
        """Where a found arch stands in the table: its value, the table's optimum, the regret
        (optimum - value, for a metric to maximise) and the share of the table it beats."""
        metric = self.primary_metric
        value = self.evaluate(arch)[metric]
        best_arch, best = self.optimum()
        values = [row[metric] for row in self._table.values()]
        sign = 1 if self.greater_is_better else -1
        beaten = sum(sign * (value - v) > 0 for v in values) / len(values)
        return {"table": str(self.path), "metric": metric, "arch": self.space.encode(self.space.parse(arch)),
                "value": value, "optimum": best, "optimum_arch": best_arch,
                "regret": sign * (best - value), "beats_fraction": beaten}


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            sample = f.read(8192)
            f.seek(0)
            try:
                dialect = csv.Sniffer().sniff(sample, delimiters=",\t;")
            except csv.Error:
                dialect = csv.excel
            reader = csv.reader(f, dialect)
            header = next(reader, None)
            rows = [r for r in reader if r]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise NasUsageError(f"cannot read table {path}: {exc}; give a readable CSV file") from None
    if not header or not rows:
        raise NasUsageError(f"table {path} is empty; give a CSV with a header and one row per arch")
    return [h.strip() for h in header], rows
