"""The typer application and the small helpers every CLI command module shares.

``nas.cli`` registers the commands of its modules from its command table (``COMMANDS``); a module
defines plain functions and imports the library inside them. Commands stay thin: parse options,
call the library, render with rich (the consoles are :mod:`nas._console`'s).
"""

from __future__ import annotations

import json
import sys
from typing import Any, Optional

import typer
from nas._console import console, err_console, print_error  # noqa: F401 (shared)

app = typer.Typer(
    name="nas",
    help="magic-nas: weight-sharing NAS with MAGIC-T / MAGIC-A super-net training.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
space_app = typer.Typer(help="Inspect a search space.", no_args_is_help=True)
app.add_typer(space_app, name="space")



@app.callback()
def _global_options(
    local_rank: Optional[int] = typer.Option(
        None, "--local_rank", "--local-rank", hidden=True,
        help="Set by the deepspeed launcher; the rank is read from the environment.",
    ),
    verbose: bool = typer.Option(
        False, "--verbose", help="Show DeepSpeed's and torch's notices and warnings (also NAS_VERBOSE=1).",
    ),
) -> None:
    """magic-nas: weight-sharing NAS with MAGIC-T / MAGIC-A super-net training."""
    import os

    if local_rank is not None:
        os.environ.setdefault("LOCAL_RANK", str(local_rank))
    if verbose:
        os.environ["NAS_VERBOSE"] = "1"  # read by nas._distributed (and inherited by workers)


def emit_json(obj: Any) -> None:
    """Machine-readable output: plain JSON on stdout, nothing else."""
    from nas._rundir import json_default

    sys.stdout.write(json.dumps(obj, indent=2, default=json_default) + "\n")
    sys.stdout.flush()


def metrics_table(title: str, rows: dict[str, dict[str, float]]):
    """Metrics per split as a rich table (``nas evaluate``, ``nas retrain``)."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("split")
    names = sorted({k for m in rows.values() for k in m})
    for name in names:
        table.add_column(name, justify="right")
    for split, metrics in rows.items():
        table.add_row(split, *(f"{metrics[n]:.4f}" if n in metrics else "" for n in names))
    return table


def summary(obj) -> str:
    """The first line of a plugin's docstring."""
    return ((obj.__doc__ or "").strip().splitlines() or [""])[0]


def list_registry(registry, title: str, json_out: bool) -> None:
    """Name and one-line summary of every registered plugin, as a table or JSON."""
    from rich.table import Table

    rows = [{"name": n, "summary": summary(registry.get(n))} for n in registry.names()]
    if json_out:
        return emit_json(rows)
    table = Table(title=title)
    table.add_column("name")
    table.add_column("summary")
    for row in rows:
        table.add_row(row["name"], row["summary"])
    console.print(table)
