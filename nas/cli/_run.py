"""CLI: ``nas run`` — the whole pipeline in one command (train, search, retrain, report)."""

from __future__ import annotations

from typing import List, Optional

import typer
from rich.table import Table

from nas.cli._app import console, emit_json, err_console


def run_command(
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Output folder (default nas-run); rerun to resume."),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="TOML or YAML file with the same keys as the options."),
    space: Optional[str] = typer.Option(None, "--space", help="Space (default bert)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Preset (default tiny)."),
    task: Optional[str] = typer.Option(None, "--task", help="Task (default: the space's embedded task)."),
    mode: Optional[str] = typer.Option(None, "--mode", help="Super-net mode: uniform (default; no MAGIC mode measured better, docs/reproduction.md) | magic-t | magic-a | magic-at."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Super-net steps (default 1500)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed (default 0)."),
    searcher: Optional[str] = typer.Option(None, "--searcher", help="Searcher (default evolutionary)."),
    budget: Optional[int] = typer.Option(None, "--budget", help="Distinct children to evaluate (default 60)."),
    max_params: Optional[str] = typer.Option(None, "--max-params", help="Constraint on parameters (e.g. 150k)."),
    max_macs: Optional[str] = typer.Option(None, "--max-macs", help="Constraint on MACs (e.g. 8M)."),
    objectives: Optional[str] = typer.Option(None, "--objectives", help="e.g. accuracy,params (multi-objective)."),
    retrain_steps: Optional[int] = typer.Option(None, "--retrain-steps", help="Standalone steps per retrained child (default 1000)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size"),
    lr: Optional[float] = typer.Option(None, "--lr"),
    ds_config: Optional[str] = typer.Option(None, "--ds-config"),
    data_dir: Optional[str] = typer.Option(None, "--data-dir"),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer"),
    image_size: Optional[int] = typer.Option(None, "--image-size"),
    storage: Optional[str] = typer.Option(None, "--storage", help="Optuna storage URL (searcher optuna)."),
    study_name: Optional[str] = typer.Option(None, "--study-name"),
    workers: Optional[int] = typer.Option(None, "--workers", help="Parallel search workers."),
    searcher_opt: Optional[List[str]] = typer.Option(None, "--searcher-opt", help="key=value for the searcher (repeatable)."),
    json_out: bool = typer.Option(False, "--json", help="Print report.json."),
) -> None:
    """Train a super-net, search it, retrain the best child and write a report."""
    from nas.report import Pipeline, PipelineConfig
    from nas.searching import parse_options

    overrides = dict(out=out, space=space, preset=preset, task=task, mode=mode, steps=steps, seed=seed,
                     searcher=searcher, budget=budget, max_params=max_params, max_macs=max_macs,
                     objectives=objectives, retrain_steps=retrain_steps, batch_size=batch_size, lr=lr,
                     ds_config=ds_config, data_dir=data_dir, tokenizer=tokenizer, image_size=image_size,
                     storage=storage, study_name=study_name, workers=workers)
    if searcher_opt:
        overrides["searcher_options"] = parse_options(searcher_opt)
    cfg = PipelineConfig.from_sources(config, overrides)
    report = Pipeline(cfg, progress=not json_out, log=lambda msg: err_console.print(msg, style="dim")).run()
    if not report:  # a non-zero rank under the deepspeed launcher
        return
    if json_out:
        return emit_json(report)
    console.print(summary_table(report))
    console.print(f"report: {cfg.out}/report.md  ({report['timings']['total']:.0f} s)", soft_wrap=True)


def summary_table(report: dict) -> Table:
    """The comparison table; fits an 80-column terminal: numbers never wrap or truncate, the
    label and arch columns fold onto more lines."""
    table = Table(title=f"{report['space']} on {report['task']}: {report['mode']} + {report['searcher']}",
                  caption="estimate: super-net (dev); dev, test: retrained standalone")
    table.add_column("child", overflow="fold")
    table.add_column("arch", overflow="fold")
    for col in ("estimate", "dev", "test", "params", "MACs"):
        table.add_column(col, justify="right", no_wrap=True)
    for row in report["comparison"]:
        table.add_row(row["label"], row["arch"], f"{row['supernet_estimate']:.4f}",
                      f"{row['retrained_dev']:.4f}", f"{row['retrained_test']:.4f}",
                      _compact(row["params"]), _compact(row["macs"]))
    return table


def _compact(n) -> str:
    """1234567 -> 1.23M (exact counts are in report.md / report.json)."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:,}"
