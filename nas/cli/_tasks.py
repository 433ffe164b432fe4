"""CLI: ``nas tasks`` — the registered tasks (data, head, loss and metrics)."""

from __future__ import annotations

import typer

from nas.cli._app import list_registry


def tasks_command(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the registered tasks."""
    from nas.tasks import TASKS  # imports torch: only when listing

    list_registry(TASKS, "tasks", json_out)
