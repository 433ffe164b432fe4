"""CLI: ``nas search`` -- search the children of a trained super-net, or a tabular benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table
from rich.text import Text

from nas.cli._app import console, emit_json, err_console, list_registry, print_error
from nas._errors import NasUsageError
from nas._registry import SEARCHERS
from nas._words import parse_count


def search_command(
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (evaluations CSV/JSON, plots, summary); rerun to resume."),
    run: Optional[Path] = typer.Option(None, "--run", help="Trained super-net run folder: children are scored with inherited weights."),
    space: Optional[str] = typer.Option(None, "--space", help="Space of --table (default nb201) or of --estimator."),
    estimator: Optional[str] = typer.Option(None, "--estimator", "-e", help="Score children with a zero-cost estimator instead of a super-net (params, macs, synflow, naswot, snip, jacov; see `nas estimators`): zero-shot NAS on --space. With --table, the table is the reference the found child is looked up in."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="Preset of --space with --estimator (default tiny)."),
    task: Optional[str] = typer.Option(None, "--task", "-t", help="Task whose data --estimator reads (default: the space's embedded task)."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Data folder of --task."),
    estimator_batch_size: int = typer.Option(64, "--estimator-batch-size", help="Training examples in the one batch --estimator reads."),
    table: Optional[Path] = typer.Option(None, "--table", help="CSV of trained results (tabular benchmark): searched instead of --run, or with --run the reference the found child is looked up in (its value next to the table optimum)."),
    metric: Optional[str] = typer.Option(None, "--metric", help="Table column to optimise (or, with --run, to report)."),
    arch_column: Optional[str] = typer.Option(None, "--arch-column", help="Table column of arch strings (detected if omitted)."),
    searcher: str = typer.Option("evolutionary", "--searcher", "-s", help="Searcher (see `nas searchers`)."),
    budget: int = typer.Option(100, "--budget", "-n", help="Distinct archs to evaluate (repeats are free)."),
    max_params: Optional[str] = typer.Option(None, "--max-params", help="Only archs with at most this many parameters (e.g. 1.5M)."),
    max_macs: Optional[str] = typer.Option(None, "--max-macs", help="Only archs with at most this many MACs (e.g. 300M)."),
    objectives: Optional[str] = typer.Option(None, "--objectives", help="Comma list, e.g. metric,params (suffix :min/:max sets a direction)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    searcher_opt: Optional[List[str]] = typer.Option(
        None, "--searcher-opt", "-O",
        help="Searcher option KEY=VALUE (repeatable). evolutionary: population, tournament, crossover, "
             "mutations; optuna: heartbeat, max_duplicates and any option of the sampler (e.g. n_startup_trials=20)."),
    sampler: Optional[str] = typer.Option(None, "--sampler", help="Optuna sampler: tpe (multivariate, default), nsga2, gp, random, cmaes, qmc, ..."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Optuna storage: SQLAlchemy URL or journal file path (default: sqlite in --out)."),
    study_name: Optional[str] = typer.Option(None, "--study-name", help="Optuna study to create, resume or join (default nas-search)."),
    workers: int = typer.Option(1, "--workers", "-j", help="Processes sharing the search on this machine (optuna)."),
    top: int = typer.Option(10, "--top", help="Rows of the top-k table."),
    json_out: bool = typer.Option(False, "--json", help="Print only the JSON summary on stdout."),
) -> None:
    """Search archs under a budget of distinct evaluations; log every evaluation to --out."""
    from nas.evaluate import evaluator_factory, reference_table
    from nas.searching import parse_options, search, searcher_options

    factory = evaluator_factory(run, space, table, metric, arch_column, estimator=estimator, preset=preset,
                                task=task, data_dir=data_dir, seed=seed,
                                estimator_batch_size=estimator_batch_size)
    reference = reference_table(run, table, metric, arch_column, estimator=estimator, space=space)
    cls = SEARCHERS.get(searcher)
    known = searcher_options(cls)
    options = parse_options(searcher_opt or [], known, what="--searcher-opt")
    for flag, key, value in (("--sampler", "sampler", sampler), ("--storage", "storage", storage),
                             ("--study-name", "study_name", study_name)):
        if value is None:
            continue
        if key not in known:
            raise NasUsageError(f"{flag} applies to --searcher optuna, not '{searcher}'")
        options[key] = value
    evaluator = factory()
    result = search(
        evaluator, searcher, budget, seed=seed, out=out, options=options, objectives=objectives,
        max_params=parse_count(max_params, "--max-params"), max_macs=parse_count(max_macs, "--max-macs"),
        workers=workers, evaluator_factory=factory, console=err_console, reference=reference,
    )
    summary = result.summary()
    if json_out:
        return emit_json(summary)
    _print_result(result, top)


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _print_result(result, top: int) -> None:
    if result.stopped:
        print_error(result.stopped, "stopped early:", "yellow")
    name = result.objectives[0].name
    shown = result.top(top)
    table = Table(title=f"top {len(shown)} of {len(result.records)} evaluated archs ({result.searcher})")
    table.add_column("#", justify="right")
    table.add_column("arch", overflow="fold")
    for column in (name, "params", "MACs", "seconds"):
        table.add_column(column, justify="right")
    for rank, r in enumerate(shown, start=1):
        table.add_row(str(rank), r["arch"], _fmt(r["score"]), _fmt(r["params"]), _fmt(r["macs"]), _fmt(r["time"]))
    console.print(table)
    if len(result.objectives) > 1:
        front = Table(title=f"Pareto front ({', '.join(o.name + ':' + o.direction[:3] for o in result.objectives)})")
        front.add_column("arch", overflow="fold")
        for o in result.objectives:
            front.add_column(o.name, justify="right")
        for r in result.pareto:
            front.add_row(r["arch"], *(_fmt(v) for v in r["values"]))
        console.print(front)
    if result.best:
        console.print(Text.assemble("best: ", (result.best["arch"], "bold"),
                                    f" {name} {_fmt(result.best['score'])}"), soft_wrap=True, highlight=False)
    ref = result.extra.get("reference")
    if ref:
        console.print(f"in the table ({ref['metric']}): found child {_fmt(ref['value'])}, table optimum "
                      f"{_fmt(ref['optimum'])} (regret {_fmt(ref['regret'])}; beats "
                      f"{ref['beats_fraction']:.1%} of the table)", soft_wrap=True, highlight=False)
    console.print(f"results in {result.out}", soft_wrap=True, highlight=False)


def searchers_command(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the registered searchers."""
    list_registry(SEARCHERS, "searchers", json_out)
