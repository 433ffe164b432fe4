"""CLI: ``nas search`` -- search the children of a trained super-net, or a tabular benchmark."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table
from rich.text import Text

from ._cli_app import app, console, emit_json, err_console, print_error
from ._errors import NasUsageError
from ._registry import SEARCHERS
from ._searcher import parse_options, searcher_options

_SUFFIX = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9}


def parse_count(text: Optional[str], flag: str) -> Optional[float]:
    """``"1.5M"`` -> 1500000.0 (suffixes k, M, G)."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmgb]?)\s*", text.lower())
    if not match:
        raise NasUsageError(f"{flag} '{text}' is not a number; write e.g. 1500000 or 1.5M")
    return float(match.group(1)) * _SUFFIX[match.group(2)]


def _supernet_evaluator(run_dir: str):
    try:
        from ._evaluator import SupernetEvaluator
    except ImportError as exc:
        raise NasUsageError(f"super-net evaluation is unavailable ({exc}); reinstall magic-nas") from None
    return SupernetEvaluator(run_dir)


def _table_evaluator(space: str, table: str, metric: Optional[str], arch_column: Optional[str]):
    from ._search_table import TableEvaluator

    return TableEvaluator(space, table, metric, arch_column=arch_column)


def evaluator_factory(run, space, table, metric, arch_column):
    """A picklable factory of the evaluator the options describe (each worker calls it).

    With both --run and --table the super-net is searched and the table is only the reference
    the found child is looked up in (see :func:`reference_table`)."""
    if run is not None:
        if space is not None:
            raise NasUsageError("--space goes with --table alone; a --run knows its space")
        if table is None and (metric is not None or arch_column is not None):
            raise NasUsageError("--metric and --arch-column go with --table; a --run knows its metric")
        if not Path(run).is_dir():
            raise NasUsageError(f"--run {run} is not a folder; give the output folder of `nas train`")
        return functools.partial(_supernet_evaluator, str(run))
    if table is not None:
        return functools.partial(_table_evaluator, space or "nb201", str(table), metric, arch_column)
    raise NasUsageError(
        "nothing to search: give --run RUN_DIR (a trained super-net) or "
        "--space nb201 --table CSV --metric COLUMN (a tabular benchmark)"
    )


def reference_table(run, table, metric, arch_column):
    """With --run and --table: the table of trained results the found child is looked up in."""
    if run is None or table is None:
        return None
    if metric is None:
        raise NasUsageError("--table with --run is the reference the found child is looked up in: "
                            "name its column of trained results with --metric (e.g. cifar10-test)")
    from ._runio import load_run_config
    from ._search_table import TableEvaluator

    return TableEvaluator(load_run_config(Path(run))["space"], str(table), metric, arch_column=arch_column)


@app.command("search")
def search_command(
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (evaluations CSV/JSON, plots, summary); rerun to resume."),
    run: Optional[Path] = typer.Option(None, "--run", help="Trained super-net run folder: children are scored with inherited weights."),
    space: Optional[str] = typer.Option(None, "--space", help="Space of --table (default nb201)."),
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
    from ._search import search

    factory = evaluator_factory(run, space, table, metric, arch_column)
    reference = reference_table(run, table, metric, arch_column)
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
