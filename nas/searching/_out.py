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

from nas._errors import NasUsageError
from nas._rundir import atomic_write_text, json_default

from nas._rundir import SEARCH_CSV as CSV_NAME  # noqa: E402 (the layout lives in nas._rundir)
from nas._rundir import SEARCH_JSON as JSON_NAME  # noqa: E402
from nas._rundir import SEARCH_LOCK as LOCK_NAME  # noqa: E402
from nas._rundir import SEARCH_PARETO_PLOT as PARETO_PLOT_NAME  # noqa: E402
from nas._rundir import SEARCH_PLOT as PLOT_NAME  # noqa: E402
from nas._rundir import SEARCH_SETTINGS as SETTINGS_NAME  # noqa: E402
from nas._rundir import SEARCH_SUMMARY as SUMMARY_NAME  # noqa: E402
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


# Files a search may write into --out (the Optuna searcher keeps its default study there too).
OUT_FILES = (CSV_NAME, JSON_NAME, SETTINGS_NAME, SUMMARY_NAME, PLOT_NAME, PARETO_PLOT_NAME, LOCK_NAME,
             "study.db", "study.db-wal", "study.db-shm", "study.db-journal")


class SearchOut:
    """Owns one output folder for the duration of a search (use as a context manager).

    Opening it only reads: the folder's files are checked (no symbolic links, regular files only),
    the lock is taken, ``search.json`` is compared with ``settings`` and ``evaluations.csv`` is
    parsed. Nothing that exists is changed until :meth:`commit` (called once the search is about to
    run), so a refused folder is left exactly as it was. Every later write is a temp file + rename
    (never through a link) except the append-only CSV log, opened with ``O_NOFOLLOW``.
    """

    def __init__(self, path: str | Path, settings: dict[str, Any]):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise NasUsageError(f"--out {self.path} is a file, not a folder; choose another --out")
        self._created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise NasUsageError(f"cannot create --out folder {self.path}: {exc}") from None
        self._lock = None
        self._lock_created = False
        self._committed = False
        try:
            self._check_files()
            self._lock = self._acquire_lock()
            self.settings = self._merged_settings(settings)
            self.csv_path = self.path / CSV_NAME
            self._header: list[str] | None = None
            self._last_json = 0.0
            self._earlier, self._clean_log = self._read_log()
        except BaseException:
            self.close()
            raise

    def _check_files(self) -> None:
        for name in OUT_FILES:
            p = self.path / name
            if p.is_symlink():
                raise NasUsageError(
                    f"{p} is a symbolic link; nas search never writes through links: "
                    "remove the link or choose another --out"
                )
            if p.exists() and not p.is_file():
                raise NasUsageError(f"{p} is not a regular file; remove it or choose another --out")

    def _acquire_lock(self):
        import errno
        import fcntl

        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        self._lock_created = not os.path.lexists(self.path / LOCK_NAME)
        try:
            fd = os.open(self.path / LOCK_NAME, flags, 0o644)  # never truncates, never follows a link
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise NasUsageError(
                    f"{self.path / LOCK_NAME} is a symbolic link; nas search never writes through "
                    "links: remove the link or choose another --out"
                ) from None
            raise NasUsageError(f"cannot write to --out folder {self.path}: {exc.strerror}") from None
        lock = os.fdopen(fd, "r+b")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise NasUsageError(
                f"another nas search is writing {self.path}; wait for it or choose another --out"
            ) from None
        return lock

    def _merged_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        """``settings`` over the stored ones; refuses a folder of another search (reads only)."""
        path = self.path / SETTINGS_NAME
        if not path.exists():
            return dict(settings)
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise NasUsageError(
                f"{path} is not a readable search record ({type(exc).__name__}); restore it, or "
                "choose another --out"
            ) from None
        if not isinstance(old, dict):
            raise NasUsageError(f"{path} is not a search record (a JSON object); choose another --out")
        for key in RESUME_KEYS:
            if key in old and old[key] != settings.get(key):
                raise NasUsageError(
                    f"--out {self.path} holds a search with {key} '{old[key]}', not "
                    f"'{settings.get(key)}'; choose another --out to start a new search"
                )
        old.update({k: v for k, v in settings.items() if v is not None})
        return old

    def _read_log(self) -> tuple[list[dict[str, Any]], bytes | None]:
        """Records of ``evaluations.csv`` and, when its last line is torn (a kill mid-write), the
        bytes to keep; refuses a file that is not a search log. Reads only."""
        if not self.csv_path.exists():
            return [], None
        raw = self.csv_path.read_bytes()
        cut = raw.rfind(b"\n") + 1
        keep = raw[:cut] if raw and not raw.endswith(b"\n") else None
        not_a_log = (f"{self.csv_path} is not a nas search log; choose another --out "
                     "(or move the file away)")
        try:
            text = raw[:cut].decode("utf-8")
            tail = raw[cut:].decode("utf-8", errors="replace")
        except UnicodeDecodeError:
            raise NasUsageError(not_a_log) from None
        reader = csv.reader(io.StringIO(text))
        header = next(reader, None)
        if not header:
            fixed = ",".join(FIXED_COLUMNS)
            if tail and not (fixed.startswith(tail) or tail.startswith(fixed + ",")):
                raise NasUsageError(not_a_log)  # one line of something else, not a torn header
            return [], keep
        if tuple(header[: len(FIXED_COLUMNS)]) != FIXED_COLUMNS:
            raise NasUsageError(
                f"{self.csv_path} is not a nas search log (columns {', '.join(header[:6])}); "
                "choose another --out"
            )
        self._header = header
        records = []
        for line, row in enumerate(reader, start=2):
            if len(row) != len(header):
                continue
            values = dict(zip(header, row))
            try:
                records.append({
                    "index": int(values["index"]),
                    "arch": values["arch"],
                    "score": _num(values["score"]),
                    "params": _num(values["params"]),
                    "macs": _num(values["macs"]),
                    "time": _num(values["time"]),
                    "metrics": {k: _num(values[k]) for k in header[len(FIXED_COLUMNS):]},
                })
            except ValueError:
                raise NasUsageError(
                    f"{self.csv_path} line {line} is not a search log row ({','.join(row)[:60]}); "
                    "restore the file or choose another --out"
                ) from None
        return records, keep

    # ---- reading (resume) ---------------------------------------------------------------------
    def load(self) -> list[dict[str, Any]]:
        """Records of earlier runs into this folder, in evaluation order (read when opened)."""
        return list(self._earlier)

    def commit(self) -> None:
        """The search is about to run: record its settings and drop a torn last CSV line
        (atomically). Called by the driver after every check passed; idempotent."""
        if self._committed:
            return
        atomic_write_text(self.path / SETTINGS_NAME, json.dumps(self.settings, indent=2, default=str) + "\n")
        if self._clean_log is not None:
            atomic_write_text(self.csv_path, self._clean_log.decode("utf-8"))
            self._clean_log = None
        self._committed = True

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
        self.commit()
        flags = (os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if new_file else os.O_APPEND)
                 | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        fd = os.open(self.csv_path, flags, 0o644)  # a new file, or the (empty) one read at start
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
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
        self.commit()
        self.write_json(records)
        atomic_write_text(self.path / SUMMARY_NAME, json.dumps(summary, indent=2, default=json_default) + "\n")
        plot_best_so_far(records, objectives[0], self.path / PLOT_NAME)
        if len(objectives) >= 2:
            plot_pareto(records, pareto, objectives, self.path / PARETO_PLOT_NAME)

    def close(self) -> None:
        if self._lock is None:
            return
        if self._lock_created and not self._committed:
            # Refused before anything was written: leave no lock file (unlinked while still held,
            # so no other search can hold a lock on the unlinked file).
            try:
                os.unlink(self.path / LOCK_NAME)
            except OSError:
                pass
        self._lock.close()
        self._lock = None
        if self._created and not self._committed:
            try:
                self.path.rmdir()  # only if empty (a searcher may have left its storage there)
            except OSError:
                pass

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
    from nas.report._plots import figure, save, style

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
    fig, ax = figure(6, 4)
    ax.step(xs, ys, where="post")
    style(ax, "evaluations (distinct archs)", f"best {objective.name}", "best so far")
    save(fig, path)


def plot_pareto(records: list[dict[str, Any]], pareto: list[dict[str, Any]], objectives: Sequence[Any], path: Path) -> None:
    """All evaluations in the plane of the first two objectives, the Pareto front highlighted."""
    from nas.report._plots import figure, save, style

    a, b = objectives[0], objectives[1]
    pts = [(a.value(r), b.value(r)) for r in records]
    pts = [p for p in pts if _finite(p[0]) and _finite(p[1])]
    front = sorted((a.value(r), b.value(r)) for r in pareto)
    fig, ax = figure(6, 4)
    if pts:
        ax.scatter(*zip(*pts), s=8, alpha=0.5, label="evaluated")
    if front:
        ax.plot(*zip(*front), "o-", color="C3", label="Pareto front")
    style(ax, f"{a.name} ({'max' if a.maximize else 'min'})", f"{b.name} ({'max' if b.maximize else 'min'})",
          legend=bool(pts or front))
    save(fig, path)
