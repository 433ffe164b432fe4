"""CLI: ``nas evaluate`` — one child scored through the super-net's shared weights."""

from __future__ import annotations

import typer

from nas.cli._app import console, emit_json, metrics_table


def evaluate_command(
    run_dir: str = typer.Argument(..., help="A `nas train` run directory."),
    arch: str = typer.Option(..., "--arch", "-a", help="Arch string or named arch."),
    split: str = typer.Option("dev", "--split", help="dev | test."),
    bn_recal_batches: int = typer.Option(4, "--bn-recal-batches", help="Training batches to recalibrate BatchNorm (0: off)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Evaluate one child through the super-net's shared weights."""
    from nas.evaluate import SupernetEvaluator

    ev = SupernetEvaluator(run_dir, split=split, bn_recal_batches=bn_recal_batches)
    parsed = ev.space.parse(arch)
    metrics = ev.evaluate(parsed)
    if json_out:
        return emit_json({"arch": ev.space.encode(parsed), "split": split, "metrics": metrics})
    console.print(metrics_table(f"{ev.space.encode(parsed)} ({ev.task.name})", {split: metrics}))
