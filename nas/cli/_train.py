"""CLI: ``nas train`` — super-net training on DeepSpeed (also under the deepspeed launcher)."""

from __future__ import annotations

from typing import Optional

import typer

from nas.cli._app import console, emit_json


def train_command(
    space: str = typer.Argument(..., help="Space name (see `nas spaces`)."),
    out: str = typer.Option(..., "--out", "-o", help="Run directory to create (or --resume)."),
    task: Optional[str] = typer.Option(None, "--task", "-t", help="Task; default: the space's embedded task."),
    mode: Optional[str] = typer.Option(None, "--mode", "-m", help="uniform (default) | magic-t | magic-a | magic-at."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="Space preset (default tiny)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Optimizer steps (default 2000; with --resume, a larger value extends the run)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for sampling children, data order and init (default 0)."),
    ds_config: Optional[str] = typer.Option(None, "--ds-config", help="DeepSpeed JSON (default: ds_configs/cpu.json)."),
    objective: Optional[str] = typer.Option(None, "--objective", help="task (default) | mlm (masked-LM pretraining, bert)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Global batch (default: ds_config's)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (default: ds_config's)."),
    walk: Optional[str] = typer.Option(None, "--walk", help="MAGIC-T walk: balanced (default; every option trained about equally often) | plain (the paper's random one-slot walk)."),
    align: Optional[str] = typer.Option(None, "--align", help="MAGIC-A alignment: logits (KL, default) | hidden (MSE; measured worse: docs/reproduction.md)."),
    align_lambda: Optional[float] = typer.Option(None, "--align-lambda", help="MAGIC-A loss weight (default 1)."),
    align_warmup: Optional[int] = typer.Option(None, "--align-warmup", help="Steps without alignment (default 20%)."),
    align_ramp: Optional[int] = typer.Option(None, "--align-ramp", help="Steps ramping lambda up (default 20%)."),
    align_temperature: Optional[float] = typer.Option(None, "--align-temperature", help="Softmax temperature of KL targets (default 1)."),
    anchor_every: Optional[int] = typer.Option(None, "--anchor-every", help="Compare child and anchor every K steps (default steps/20)."),
    anchor_margin: Optional[float] = typer.Option(None, "--anchor-margin", help="Replace the anchor only when beaten by this much (default 0)."),
    anchor_batches: Optional[int] = typer.Option(None, "--anchor-batches", help="Fixed dev batches for anchor comparisons (default 4)."),
    save_every: Optional[int] = typer.Option(None, "--save-every", help="Checkpoint every N steps (default steps/4)."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Task data directory (GLUE, ImageFolder)."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="Hugging Face tokenizer name or path."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Input size for image tasks."),
    num_workers: Optional[int] = typer.Option(None, "--num-workers", help="Data-loading worker processes (default 0)."),
    tensorboard: bool = typer.Option(False, "--tensorboard", help="Also log scalars to TensorBoard."),
    json_out: bool = typer.Option(False, "--json", help="Print the run summary as JSON."),
) -> None:
    """Train a weight-sharing super-net in one of the four modes."""
    from nas import _distributed as dist
    from nas.train import TrainConfig, train

    # Only the options given on the command line: a --resume compares exactly those with the run.
    options = {k: v for k, v in dict(
        task=task, preset=preset, mode=mode, objective=objective, steps=steps, seed=seed,
        ds_config=ds_config, batch_size=batch_size, lr=lr, walk=walk, align=align, align_lambda=align_lambda,
        align_warmup=align_warmup, align_ramp=align_ramp, align_temperature=align_temperature,
        anchor_every=anchor_every, anchor_margin=anchor_margin, anchor_batches=anchor_batches,
        save_every=save_every, data_dir=data_dir, tokenizer=tokenizer, image_size=image_size,
        num_workers=num_workers, tensorboard=tensorboard or None,
    ).items() if v is not None}
    if mode == "fixed":
        from nas._errors import NasUsageError

        raise NasUsageError("mode 'fixed' is for `nas retrain`; choose uniform, magic-t, magic-a or magic-at")
    cfg = TrainConfig(space=space, out=out, **options)
    summary = train(cfg, resume=resume, given=options)
    if not dist.is_main():
        return
    if json_out:
        emit_json(summary)
    else:
        console.print(f"trained {summary['steps']} steps in {summary['seconds']:.1f} s -> {out}")
