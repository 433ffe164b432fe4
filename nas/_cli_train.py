"""CLI: ``nas train`` — super-net training on DeepSpeed (also under the deepspeed launcher)."""

from __future__ import annotations

from typing import Optional

import typer

from ._cli_app import app, console, emit_json


@app.command("train")
def train_command(
    space: str = typer.Argument(..., help="Space name (see `nas spaces`)."),
    out: str = typer.Option(..., "--out", "-o", help="Run directory to create (or --resume)."),
    task: Optional[str] = typer.Option(None, "--task", "-t", help="Task; default: the space's embedded task."),
    mode: str = typer.Option("uniform", "--mode", "-m", help="uniform | magic-t | magic-a | magic-at."),
    preset: str = typer.Option("tiny", "--preset", "-p", help="Space preset."),
    steps: int = typer.Option(2000, "--steps", help="Optimizer steps."),
    seed: int = typer.Option(0, "--seed", help="Seed for sampling children, data order and init."),
    ds_config: Optional[str] = typer.Option(None, "--ds-config", help="DeepSpeed JSON (default: ds_configs/cpu.json)."),
    objective: str = typer.Option("task", "--objective", help="task | mlm (masked-LM pretraining, bert)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Global batch (default: ds_config's)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (default: ds_config's)."),
    align: str = typer.Option("logits", "--align", help="MAGIC-A alignment: logits (KL) | hidden (MSE)."),
    align_lambda: float = typer.Option(1.0, "--align-lambda", help="MAGIC-A loss weight."),
    align_warmup: Optional[int] = typer.Option(None, "--align-warmup", help="Steps without alignment (default 20%)."),
    align_ramp: Optional[int] = typer.Option(None, "--align-ramp", help="Steps ramping lambda up (default 20%)."),
    align_temperature: float = typer.Option(1.0, "--align-temperature", help="Softmax temperature of KL targets."),
    anchor_every: Optional[int] = typer.Option(None, "--anchor-every", help="Compare child and anchor every K steps (default steps/20)."),
    anchor_margin: float = typer.Option(0.0, "--anchor-margin", help="Replace the anchor only when beaten by this much."),
    anchor_batches: int = typer.Option(4, "--anchor-batches", help="Fixed dev batches for anchor comparisons."),
    save_every: Optional[int] = typer.Option(None, "--save-every", help="Checkpoint every N steps (default steps/4)."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Task data directory (GLUE, ImageFolder)."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="Hugging Face tokenizer name or path."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Input size for image tasks."),
    num_workers: int = typer.Option(0, "--num-workers", help="Data-loading worker processes."),
    tensorboard: bool = typer.Option(False, "--tensorboard", help="Also log scalars to TensorBoard."),
    json_out: bool = typer.Option(False, "--json", help="Print the run summary as JSON."),
) -> None:
    """Train a weight-sharing super-net in one of the four modes."""
    from . import _distributed as dist
    from .train import TrainConfig, train

    cfg = TrainConfig(
        space=space, out=out, task=task, preset=preset, mode=mode, objective=objective, steps=steps,
        seed=seed, ds_config=ds_config, batch_size=batch_size, lr=lr, align=align,
        align_lambda=align_lambda, align_warmup=align_warmup, align_ramp=align_ramp,
        align_temperature=align_temperature, anchor_every=anchor_every, anchor_margin=anchor_margin,
        anchor_batches=anchor_batches, save_every=save_every, data_dir=data_dir, tokenizer=tokenizer,
        image_size=image_size, num_workers=num_workers, tensorboard=tensorboard,
    )
    if mode == "fixed":
        from ._errors import NasUsageError

        raise NasUsageError("mode 'fixed' is for `nas retrain`; choose uniform, magic-t, magic-a or magic-at")
    summary = train(cfg, resume=resume)
    if not dist.is_main():
        return
    if json_out:
        emit_json(summary)
    else:
        console.print(f"trained {summary['steps']} steps in {summary['seconds']:.1f} s -> {out}")
