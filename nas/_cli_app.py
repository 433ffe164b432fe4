"""The typer application and the small helpers every CLI command module shares.

Command modules (``_cli_*.py``) import ``app`` from here and add their commands; ``nas.cli`` imports
them all. Commands stay thin: parse options, call the library, render with rich.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Optional

import typer
from rich.console import Console

app = typer.Typer(
    name="nas",
    help="magic-nas: weight-sharing NAS with MAGIC-T / MAGIC-A super-net training.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
space_app = typer.Typer(help="Inspect a search space.", no_args_is_help=True)
app.add_typer(space_app, name="space")

console = Console()
err_console = Console(stderr=True)


@app.callback()
def _global_options(
    local_rank: Optional[int] = typer.Option(
        None, "--local_rank", "--local-rank", hidden=True,
        help="Set by the deepspeed launcher; the rank is read from the environment.",
    ),
) -> None:
    """magic-nas: weight-sharing NAS with MAGIC-T / MAGIC-A super-net training."""
    if local_rank is not None:
        import os

        os.environ.setdefault("LOCAL_RANK", str(local_rank))


def emit_json(obj: Any) -> None:
    """Machine-readable output: plain JSON on stdout, nothing else."""
    from ._runio import json_default

    sys.stdout.write(json.dumps(obj, indent=2, default=json_default) + "\n")
    sys.stdout.flush()
