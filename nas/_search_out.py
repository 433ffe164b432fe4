"""The search output folder: every evaluation as CSV and JSON, a summary, plots; resumable.

``evaluations.csv`` is the durable log: one row appended (flushed and fsynced) per finished
evaluation, so an interrupted search loses nothing; a torn last line is dropped on resume.
``evaluations.json`` is an atomic snapshot (temp file + rename) refreshed at most every second and
at the end. ``search.json`` records what was searched, so resuming with an incompatible setting
fails clearly instead of mixing results. A lock file keeps two searches from writing one folder.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Sequence

from ._errors import NasUsageError
from ._runio import atomic_write_text, json_default

CSV_NAME = "evaluations.csv"
JSON_NAME = "evaluations.json"
SETTINGS_NAME = "search.json"
SUMMARY_NAME = "summary.json"
PLOT_NAME = "best_so_far.png"
PARETO_PLOT_NAME = "pareto.png"
FIXED_COLUMNS = ("index", "arch", "score", "params", "macs", "time")
# Settings that must match when resuming into an existing folder (others may change, e.g. budget).
RESUME_KEYS = ("space", "metric")


def _public(record: dict[str, Any]) -> dict[str, Any]:
    """A record without its private (``_``-prefixed) fields and raw objective values."""
    return {k: v for k, v in record.items() if not k.startswith("_") and k != "values"}


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _num(text: str) -> float | int | None:
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        return float(text)


class SearchOut:
    """Owns one output folder for the duration of a search (use as a context manager)."""

    def __init__(self, path: str | Path, settings: dict[str, Any]):
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise NasUsageError(f"cannot create --out folder {self.path}: {exc}") from None
        self._lock = self._acquire_lock()
        self.settings = settings
        self._check_settings()
        self.csv_path = self.path / CSV_NAME
        self._header: list[str] | None = None
        self._last_json = 0.0

    def _acquire_lock(self):
        import fcntl

        lock = open(self.path / ".lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise NasUsageError(
                f"another nas search is writing {self.path}; wait for it or choose another --out"
            ) from None
        return lock

    def _check_settings(self) -> None:
        path = self.path / SETTINGS_NAME
        if path.exists():
            try:
                old = json.loads(path.read_text())
            except (OSError, ValueError):
                old = {}
            for key in RESUME_KEYS:
                if key in old and old[key] != self.settings.get(key):
                    raise NasUsageError(
                        f"--out {self.path} holds a search with {key} '{old[key]}', not "
                        f"'{self.settings.get(key)}'; choose another --out to start a new search"
                    )
            old.update({k: v for k, v in self.settings.items() if v is not None})
            self.settings = old
        atomic_write_text(path, json.dumps(self.settings, indent=2, default=str) + "\n")

    # ---- reading (resume) ---------------------------------------------------------------------
    def load(self) -> list[dict[str, Any]]:
        """Records of earlier runs into this folder, in evaluation order."""
        if not self.csv_path.exists():
            return []
        raw = self.csv_path.read_bytes()
        if raw and not raw.endswith(b"\n"):  # interrupted mid-write: drop the torn line
            raw = raw[: raw.rfind(b"\n") + 1]
            with open(self.csv_path, "r+b") as f:
                f.truncate(len(raw))
        reader = csv.reader(io.StringIO(raw.decode("utf-8")))
        header = next(reader, None)
        if not header:
            return []
        if tuple(header[: len(FIXED_COLUMNS)]) != FIXED_COLUMNS:
            raise NasUsageError(
                f"{self.csv_path} is not a nas search log (columns {', '.join(header[:6])}); "
                "choose another --out"
            )
        self._header = header
        records = []
        for row in reader:
            if len(row) != len(header):
                continue
            values = dict(zip(header, row))
            records.append({
                "index": int(values["index"]),
                "arch": values["arch"],
                "score": _num(values["score"]),
                "params": _num(values["params"]),
                "macs": _num(values["macs"]),
                "time": _num(values["time"]),
                "metrics": {k: _num(values[k]) for k in header[len(FIXED_COLUMNS):]},
            })
        return records

    # ---- writing ------------------------------------------------------------------------------
    def append(self, record: dict[str, Any], records: list[dict[str, Any]]) -> None:
        """Log one finished evaluation durably (CSV row); refresh the JSON snapshot of ``records``."""
        new_file = self._header is None
        if new_file:
            self._header = list(FIXED_COLUMNS) + list(record.get("metrics", {}))
        row = [_cell(record.get(c)) for c in FIXED_COLUMNS]
        row += [_cell(record.get("metrics", {}).get(c)) for c in self._header[len(FIXED_COLUMNS):]]
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        if new_file:
            writer.writerow(self._header)
        writer.writerow(row)
        with open(self.csv_path, "w" if new_file else "a", encoding="utf-8", newline="") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())
        if time.monotonic() - self._last_json >= 1.0:
            self.write_json(records)

    def write_json(self, records: list[dict[str, Any]]) -> None:
        public = [_public(r) for r in records]
        atomic_write_text(self.path / JSON_NAME, json.dumps(public, indent=1, default=json_default) + "\n")
        self._last_json = time.monotonic()

    def finish(self, records: list[dict[str, Any]], summary: dict[str, Any], objectives: Sequence[Any],
               pareto: list[dict[str, Any]]) -> None:
        self.write_json(records)
        atomic_write_text(self.path / SUMMARY_NAME, json.dumps(summary, indent=2, default=json_default) + "\n")
        plot_best_so_far(records, objectives[0], self.path / PLOT_NAME)
        if len(objectives) >= 2:
            plot_pareto(records, pareto, objectives, self.path / PARETO_PLOT_NAME)

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> "SearchOut":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def plot_best_so_far(records: list[dict[str, Any]], objective: Any, path: Path) -> None:
    """Best score so far (feasible evaluations) against the number of evaluations."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    xs, ys, best = [], [], None
    for n, r in enumerate(records, start=1):
        s = r.get("score")
        if _finite(s) and r.get("_feasible", True) and (
            best is None or (s > best if objective.maximize else s < best)
        ):
            best = s
        if best is not None:
            xs.append(n)
            ys.append(best)
    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.step(xs, ys, where="post")
    ax.set_xlabel("evaluations (distinct archs)")
    ax.set_ylabel(f"best {objective.name}")
    ax.set_title("best so far")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def plot_pareto(records: list[dict[str, Any]], pareto: list[dict[str, Any]], objectives: Sequence[Any], path: Path) -> None:
    """All evaluations in the plane of the first two objectives, the Pareto front highlighted."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    a, b = objectives[0], objectives[1]
    pts = [(a.value(r), b.value(r)) for r in records]
    pts = [p for p in pts if _finite(p[0]) and _finite(p[1])]
    front = sorted((a.value(r), b.value(r)) for r in pareto)
    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if pts:
        ax.scatter(*zip(*pts), s=8, alpha=0.5, label="evaluated")
    if front:
        ax.plot(*zip(*front), "o-", color="C3", label="Pareto front")
    ax.set_xlabel(f"{a.name} ({'max' if a.maximize else 'min'})")
    ax.set_ylabel(f"{b.name} ({'max' if b.maximize else 'min'})")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
