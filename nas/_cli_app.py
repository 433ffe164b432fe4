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

# markup=False: text is printed literally, so an arch, a path or an error message holding "[/red]"
# is shown as written instead of being read as rich markup (which raised MarkupError). Style with
# ``style=`` or :class:`rich.text.Text`, never with markup in strings.
console = Console(markup=False)
err_console = Console(stderr=True, markup=False)


def print_error(message: str, label: str = "error:", style: str = "red") -> None:
    """One line on stderr: a red label, then ``message`` verbatim (no markup, no highlighting)."""
    from rich.text import Text

    err_console.print(Text.assemble((label, style), " ", message), highlight=False, soft_wrap=True)


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
    from ._runio import json_default

    sys.stdout.write(json.dumps(obj, indent=2, default=json_default) + "\n")
    sys.stdout.flush()
