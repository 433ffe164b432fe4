"""CLI: ``nas retrain`` and ``nas export`` — the found child, on its own."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from nas._rundir import RESULT
from nas.cli._app import console, emit_json, metrics_table


def retrain_command(
    space: str = typer.Argument(..., help="Space name."),
    arch: str = typer.Option(..., "--arch", "-a", help="Arch string or named arch."),
    out: str = typer.Option(..., "--out", "-o", help="Directory for the child's run."),
    task: Optional[str] = typer.Option(None, "--task", "-t", help="Task; default: the space's embedded task."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="Space preset (default tiny, or the --init-from run's)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Optimizer steps (default 2000; with --resume, a larger value extends the run)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed (default 0)."),
    init_from: Optional[str] = typer.Option(None, "--init-from", help="Inherit weights from this super-net run (fine-tuning)."),
    ds_config: Optional[str] = typer.Option(None, "--ds-config", help="DeepSpeed JSON."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size"),
    lr: Optional[float] = typer.Option(None, "--lr"),
    data_dir: Optional[str] = typer.Option(None, "--data-dir"),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer"),
    image_size: Optional[int] = typer.Option(None, "--image-size"),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted retraining."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Train one child standalone (ground truth), or fine-tune it from a super-net."""
    from nas.child import retrain

    result = retrain(space, arch, out, task=task, steps=steps, seed=seed, preset=preset,
                     init_from=init_from, resume=resume, ds_config=ds_config, batch_size=batch_size,
                     lr=lr, data_dir=data_dir, tokenizer=tokenizer, image_size=image_size)
    if not result:
        return
    if json_out:
        return emit_json(result)
    console.print(metrics_table(f"{result['arch']} retrained {result['steps']} steps", result["metrics"]))
    console.print(f"params {result['params']:,}  MACs {result['macs']:,}  -> {Path(out) / RESULT}")


def export_command(
    run_dir: str = typer.Argument(..., help="A `nas train` or `nas retrain` run directory."),
    arch: str = typer.Option(..., "--arch", "-a", help="Arch string or named arch."),
    out: str = typer.Option(..., "--out", "-o", help="New directory for the exported model."),
    bn_recal_batches: int = typer.Option(4, "--bn-recal-batches", help="Training batches to recalibrate BatchNorm (0: off)."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Export a child: weights (safetensors), arch.json and a torch.export program (model.pt2)."""
    from nas.child import export_child

    info = export_child(run_dir, arch, out, bn_recal_batches=bn_recal_batches)
    if json_out:
        return emit_json(info)
    console.print(f"exported {info['arch']} -> {out} ({', '.join(info['files'].values())})")
