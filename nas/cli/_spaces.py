"""CLI: ``nas spaces``, ``nas space show`` and ``nas space sample``."""

from __future__ import annotations

import random
from typing import Optional

import typer
from rich.table import Table

from nas.cli._app import console, emit_json, summary


def spaces_command(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the registered search spaces."""
    from nas._registry import SPACES

    rows = []
    for name in SPACES.names():
        cls = SPACES.get(name)
        rows.append({"name": name, "presets": list(cls.presets), "summary": summary(cls)})
    if json_out:
        return emit_json(rows)
    table = Table(title="search spaces")
    for column in ("name", "presets", "summary"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], ", ".join(row["presets"]), row["summary"])
    console.print(table)


def show_command(
    space: str = typer.Argument(..., help="Space name (see `nas spaces`)."),
    preset: str = typer.Option("tiny", "--preset", "-p", help="Preset (tiny, base, ...)."),
    arch: Optional[str] = typer.Option(None, "--arch", "-a", help="Arch string or named arch."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show a space's slots and options, and with --arch a child's parameters and MACs."""
    from nas.supernet import space_info

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


def sample_command(
    space: str = typer.Argument(..., help="Space name (see `nas spaces`)."),
    preset: str = typer.Option("tiny", "--preset", "-p"),
    n: int = typer.Option(1, "--n", "-n", min=1, help="How many archs."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
) -> None:
    """Print N uniformly sampled canonical arch strings, one per line."""
    from nas import get_space

    sp = get_space(space, preset=preset)
    rng = random.Random(seed)
    for _ in range(n):
        print(sp.encode(sp.sample(rng)))
