"""Matplotlib PNGs written beside the JSON results (Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def scatter(path: str | Path, x: Sequence[float], y: Sequence[float], xlabel: str, ylabel: str,
            title: str, labels: Sequence[str] | None = None) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=120)
    ax.scatter(x, y, s=22, alpha=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def lines(path: str | Path, series: dict[str, tuple[Sequence[float], Sequence[float]]], xlabel: str,
          ylabel: str, title: str, bands: dict[str, tuple[Sequence[float], Sequence[float]]] | None = None,
          step: bool = False) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=120)
    for name, (x, y) in series.items():
        (ax.step(x, y, where="post", label=name) if step else ax.plot(x, y, marker="o", ms=3, label=name))
        if bands and name in bands:
            lo, hi = bands[name]
            ax.fill_between(x, lo, hi, alpha=0.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
