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


def make_progress(*extra_columns, unit: str = "it", enabled: bool = True) -> Progress:
    from ._cli_app import err_console

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), *extra_columns,
        RateColumn(unit), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=err_console, disable=not enabled,
    )


def track(items: Iterable[T], description: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    items = list(items) if total is None else items
    with make_progress(unit=unit) as progress:
        yield from progress.track(items, total=total or len(items), description=description)
