"""Every PNG magic-nas writes, in one style: matplotlib's object API on the Agg canvas (no display,
no pyplot state shared between threads), 120 dpi, light grid, small titles, atomic saves."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

DPI = 120
TITLE_SIZE = 10
LEGEND_SIZE = 8


def figure(width: float = 6.0, height: float = 4.2, ncols: int = 1, sharey: bool = False) -> tuple[Any, Any]:
    """A new figure and its axes (one, or ``ncols`` side by side)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, ncols, sharey=sharey)


def style(ax: Any, xlabel: str | None = None, ylabel: str | None = None, title: str | None = None,
          legend: bool = False) -> None:
    """Labels, title, grid and legend the same way on every plot."""
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title, fontsize=TITLE_SIZE)
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=LEGEND_SIZE)


def save(fig: Any, path: str | Path) -> Path:
    """Lay out and write ``fig`` through a temp file of the same folder, then rename: atomic, never
    through a link."""
    import tempfile

    path = Path(path)
    fig.tight_layout()
    from nas._rundir import file_mode

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format=path.suffix.lstrip(".") or "png")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def scatter(path: str | Path, x: Sequence[float], y: Sequence[float], xlabel: str, ylabel: str,
            title: str, labels: Sequence[str] | None = None) -> Path:
    fig, ax = figure(5.5, 4.5)
    ax.scatter(x, y, s=22, alpha=0.8)
    style(ax, xlabel, ylabel, title)
    return save(fig, path)


def lines(path: str | Path, series: dict[str, tuple[Sequence[float], Sequence[float]]], xlabel: str,
          ylabel: str, title: str, bands: dict[str, tuple[Sequence[float], Sequence[float]]] | None = None,
          step: bool = False) -> Path:
    fig, ax = figure(6, 4.2)
    for name, (x, y) in series.items():
        (ax.step(x, y, where="post", label=name) if step else ax.plot(x, y, marker="o", ms=3, label=name))
        if bands and name in bands:
            lo, hi = bands[name]
            ax.fill_between(x, lo, hi, alpha=0.2)
    style(ax, xlabel, ylabel, title, legend=len(series) > 1)
    return save(fig, path)
