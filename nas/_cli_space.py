"""CLI: ``nas spaces``, ``nas searchers``, ``nas space show`` and ``nas space sample``."""

from __future__ import annotations

import dataclasses
import random
from typing import Optional

import typer
from rich.table import Table

from ._cli_app import app, console, emit_json, space_app
from ._registry import SEARCHERS, SPACES, get_space


def _summary(obj) -> str:
    return ((obj.__doc__ or "").strip().splitlines() or [""])[0]


@app.command("spaces")
def spaces_command(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the registered search spaces."""
    rows = []
    for name in SPACES.names():
        cls = SPACES.get(name)
        rows.append({"name": name, "presets": list(getattr(cls, "presets", {})), "summary": _summary(cls)})
    if json_out:
        return emit_json(rows)
    table = Table(title="search spaces")
    for column in ("name", "presets", "summary"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], ", ".join(row["presets"]), row["summary"])
    console.print(table)


def _list_registry(registry, title: str, json_out: bool) -> None:
    """Name and one-line summary of every registered plugin, as a table or JSON."""
    rows = [{"name": n, "summary": _summary(registry.get(n))} for n in registry.names()]
    if json_out:
        return emit_json(rows)
    table = Table(title=title)
    table.add_column("name")
    table.add_column("summary")
    for row in rows:
        table.add_row(row["name"], row["summary"])
    console.print(table)


@app.command("searchers")
def searchers_command(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the registered searchers."""
    _list_registry(SEARCHERS, "searchers", json_out)


@app.command("tasks")
def tasks_command(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the registered tasks."""
    from .tasks import TASKS

    _list_registry(TASKS, "tasks", json_out)


def space_info(name: str, preset: str = "tiny", arch: Optional[str] = None) -> dict:
    """What ``nas space show --json`` prints."""
    space = get_space(name, preset=preset)
    info = space.describe()
    if arch is not None:
        parsed = space.parse(arch)
        info["arch"] = space.encode(parsed)
        cost = space.cost(parsed)  # None for tabular spaces without a cost table (nb201)
        if cost is not None:
            info.update(dataclasses.asdict(cost))
    return info


@space_app.command("show")
def show_command(
    space: str = typer.Argument(..., help="Space name (see `nas spaces`)."),
    preset: str = typer.Option("tiny", "--preset", "-p", help="Preset (tiny, base, ...)."),
    arch: Optional[str] = typer.Option(None, "--arch", "-a", help="Arch string or named arch."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show a space's slots and options, and with --arch a child's parameters and MACs."""
    info = space_info(space, preset, arch)
    if json_out:
        return emit_json(info)
    from rich.text import Text

    console.print(Text.assemble((info["space"], "bold"), " preset ", (info["preset"], "bold"),
                                f": {len(info['slots'])} slots, {info['size']:,} children"))
    table = Table()
    table.add_column("#", justify="right")
    table.add_column("slot")
    table.add_column("options")
    for i, slot in enumerate(info["slots"]):
        table.add_row(str(i), slot["name"], " ".join(slot["options"]))
    console.print(table)
    if info["named_archs"]:
        console.print("named archs: " + ", ".join(info["named_archs"]))
    if arch is not None and "params" in info:
        cost = Table(title=f"arch {info['arch']}")
        cost.add_column("params", justify="right")
        cost.add_column("backbone params", justify="right")
        cost.add_column("MACs", justify="right")
        cost.add_row(f"{info['params']:,}", f"{info['backbone_params']:,}", f"{info['macs']:,}")
        console.print(cost)


@space_app.command("sample")
def sample_command(
    space: str = typer.Argument(..., help="Space name (see `nas spaces`)."),
    preset: str = typer.Option("tiny", "--preset", "-p"),
    n: int = typer.Option(1, "--n", "-n", min=1, help="How many archs."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
) -> None:
    """Print N uniformly sampled canonical arch strings, one per line."""
    sp = get_space(space, preset=preset)
    rng = random.Random(seed)
    for _ in range(n):
        print(sp.encode(sp.sample(rng)))
