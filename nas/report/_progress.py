"""Rich progress bars with rate and ETA, on stderr so --json output stays clean."""

from __future__ import annotations

from typing import Iterable, Iterator, TypeVar

from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text

T = TypeVar("T")


class RateColumn(ProgressColumn):
    """Items per second (``unit`` names them)."""

    def __init__(self, unit: str = "it"):
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:.2f} {self.unit}/s")


def make_progress(*extra_columns, unit: str = "it", enabled: bool = True, console=None,
                  transient: bool = False, label: str = "[bold]{task.description}") -> Progress:
    """The one progress bar: label, bar, done/total, ``extra_columns``, rate, elapsed time and ETA,
    on stderr (``console``) so --json output stays clean."""
    if console is None:
        from nas._console import err_console as console
    return Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), *extra_columns,
        RateColumn(unit), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=console, disable=not enabled, transient=transient,
    )


def track(items: Iterable[T], description: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    items = list(items) if total is None else items
    with make_progress(unit=unit) as progress:
        yield from progress.track(items, total=total or len(items), description=description)


class LazyProgress:
    """A progress bar for a scan of unknown speed: shown only once the scan has run ``delay``
    seconds, so fast scans print nothing and slow ones (e.g. costs of many children) are never
    silent. ``with LazyProgress("scan", total) as bar: ... bar.advance()``."""

    def __init__(self, description: str, total: int | None, unit: str = "children", delay: float = 2.0,
                 console=None):
        import time

        self.description, self.total, self.unit, self.delay = description, total, unit, delay
        self.console = console
        self.done = 0
        self._start = time.monotonic()
        self._progress: Progress | None = None
        self._task = None

    def advance(self, n: int = 1) -> None:
        import time

        self.done += n
        if self._progress is None:
            if time.monotonic() - self._start < self.delay:
                return
            if self.console is None:
                from nas._console import err_console

                self.console = err_console
            if not self.console.is_terminal:  # logs get no bar frames (and errors stay one line)
                self.delay = float("inf")
                return
            self._progress = make_progress(unit=self.unit, console=self.console, transient=True,
                                           label="{task.description}")
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.total, completed=self.done)
        else:
            self._progress.update(self._task, completed=self.done)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> "LazyProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
