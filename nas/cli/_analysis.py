"""CLI: ``nas rank`` (ranking quality of a super-net) and ``nas interference`` (the paper's analysis)."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from nas.cli._app import console, emit_json, list_registry


def _ci(value: float | None, ci: list) -> str:
    if value is None:
        return "undefined (constant input)"
    lo, hi = ("nan" if v is None else f"{v:.3f}" for v in ci)
    return f"{value:.3f} [{lo}, {hi}]"


def rank_command(
    run_dir: Optional[str] = typer.Argument(None, help="A `nas train` run directory (the super-net to rank with); optional with --estimator and --space."),
    children: int = typer.Option(30, "--children", "-n", help="How many distinct children to rank."),
    estimator: Optional[str] = typer.Option(None, "--estimator", "-e", help="What ranks the children: supernet (the RUN's estimates; default with a RUN), a zero-cost estimator (params, macs, synflow, naswot, snip, jacov: see `nas estimators`), or an ensemble A+B ranking by the mean of the members' ranks (e.g. supernet+params)."),
    space: Optional[str] = typer.Option(None, "--space", help="Space of the children when no RUN is given (zero-cost estimators)."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="Preset of --space (default tiny)."),
    task: Optional[str] = typer.Option(None, "--task", "-t", help="Task whose data the estimators read, and the standalone ground truth trains on (default: the space's embedded task)."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Data folder of --task (glue:*, cifar10, imagenet)."),
    estimator_batch_size: int = typer.Option(64, "--estimator-batch-size", help="Training examples in the one batch a zero-cost estimator reads."),
    retrain_steps: int = typer.Option(1000, "--retrain-steps", help="Standalone training budget per child."),
    ground_truth: Optional[str] = typer.Option(None, "--ground-truth", help="Read ground truth from FILE instead of retraining: {arch: value} JSON, a CSV with arch and ground_truth columns, or a table of trained results with --arch-column/--metric (e.g. NAS-Bench-201)."),
    arch_column: Optional[str] = typer.Option(None, "--arch-column", help="Column of arch strings in the --ground-truth table (detected when omitted)."),
    metric: Optional[str] = typer.Option(None, "--metric", help="Column of trained results in the --ground-truth table (e.g. cifar10-test)."),
    seed: int = typer.Option(0, "--seed", help="Seed for sampling children, the estimators' batch and initialisation (and ground-truth training)."),
    gt_seeds: int = typer.Option(1, "--gt-seeds", help="Average ground truth over this many training seeds."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Parallel retraining processes."),
    split: str = typer.Option("dev", "--split", help="dev | test."),
    stratify: bool = typer.Option(False, "--stratify", help="Sample children evenly over parameter count."),
    top_k: int = typer.Option(5, "--top-k", help="k of the top-k overlap."),
    bn_recal_batches: Optional[int] = typer.Option(None, "--bn-recal-batches", help="Training batches to recalibrate BatchNorm before scoring a child through the super-net (default 4; 0: off)."),
    cache_dir: Optional[str] = typer.Option(None, "--cache-dir", help="Ground-truth cache (default ~/.cache/magic-nas)."),
    out: Optional[str] = typer.Option(None, "--out", help="Output folder (default RUN_DIR/rank, or rank-SPACE-ESTIMATOR without a RUN)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Rank children (super-net or zero-cost estimator) against a ground truth, beside params.

    Kendall tau, Spearman, top-k overlap and regret with bootstrap intervals; unless --estimator is
    params, the report also shows what the parameter count gets on the same children."""
    from nas.analysis import rank

    r = rank(run_dir, children=children, retrain_steps=retrain_steps, seed=seed,
             ground_truth=ground_truth, split=split, gt_seeds=gt_seeds, jobs=jobs, cache_dir=cache_dir,
             out=out, top_k=top_k, stratify=stratify, arch_column=arch_column, metric=metric,
             bn_recal_batches=bn_recal_batches, estimator=estimator, space=space, preset=preset,
             task=task, data_dir=data_dir, estimator_batch_size=estimator_batch_size)
    if json_out:
        return emit_json(r)
    table = Table(title=f"ranking of {r['n']} children by {r['estimator']} ({r['metric']}, {r['split']})")
    table.add_column("statistic")
    table.add_column("value [95% CI]", justify="right")
    for key in ("kendall_tau", "spearman", "pearson", f"top{top_k}_overlap"):
        table.add_row(key, _ci(r[key], r[f"{key}_ci"]))
    for k in sorted({1, top_k}):
        table.add_row(f"top{k}_regret", f"{r[f'top{k}_regret']:.3f}")
    console.print(table)
    base = r.get("baselines", {}).get("params")
    if base is not None:
        console.print(_against_params(r, base))
    console.print("wrote " + ", ".join(r["files"]))


def _against_params(r: dict, base: dict) -> str:
    """One line: the free baseline on the same children, and whether the estimator beats it."""
    line = f"params on the same {r['n']} children: Kendall tau {_ci(base['kendall_tau'], base['kendall_tau_ci'])}"
    if r["kendall_tau"] is None or base["kendall_tau"] is None:
        return line
    diff = r["kendall_tau"] - base["kendall_tau"]
    verdict = "above" if diff > 0 else "below" if diff < 0 else "level with"
    return f"{line}; {r['estimator']} is {abs(diff):.3f} {verdict} it" if diff else f"{line}; {r['estimator']} is level with it"


def estimators_command(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the registered zero-cost estimators (`nas rank --estimator`, `nas search --estimator`)."""
    from nas._registry import ESTIMATORS

    list_registry(ESTIMATORS, "zero-cost estimators (and supernet: a RUN's own estimates)", json_out)


def interference_command(
    space: str = typer.Argument(..., help="Space name."),
    preset: str = typer.Option("tiny", "--preset", "-p"),
    task: Optional[str] = typer.Option(None, "--task", "-t", help="Task (default: the space's embedded task)."),
    slot: int = typer.Option(0, "--slot", help="Index of the slot whose operator is shared."),
    op: Optional[str] = typer.Option(None, "--op", help="The shared option (default: the slot's first with weights)."),
    pairs: int = typer.Option(50, "--pairs", help="Pairs of children per k."),
    seed: int = typer.Option(0, "--seed"),
    run: Optional[str] = typer.Option(None, "--run", help="Use a trained super-net instead of initialisation."),
    batch_size: int = typer.Option(256, "--batch-size"),
    out: Optional[str] = typer.Option(None, "--out", help="Folder for interference.json and plots."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Gradient similarity of a shared operator between children that differ in k other slots."""
    from nas.analysis import interference

    if pairs < 2:
        from nas._errors import NasUsageError

        raise NasUsageError("--pairs must be at least 2 (confidence intervals need two pairs)")
    r = interference(space, preset=preset, task=task, slot=slot, op=op, pairs=pairs, seed=seed,
                     run_dir=run, batch_size=batch_size, out=out or f"interference-{space}-slot{slot}")
    if json_out:
        return emit_json({k: v for k, v in r.items() if k != "pairs_detail"})
    table = Table(title=f"shared {r['op']} in slot {r['slot_name']} ({'trained' if r['trained'] else 'init'})")
    for col in ("k", "grad cosine", "input similarity", "output similarity", "n"):
        table.add_column(col, justify="right")
    for row in r["rows"]:
        table.add_row(str(row["k"]), _ci(row["grad_cosine"], row["grad_cosine_ci"]),
                      _ci(row["input_similarity"], row["input_similarity_ci"]),
                      _ci(row["output_similarity"], row["output_similarity_ci"]), str(row["n"]))
    console.print(table)
    console.print("wrote " + ", ".join(r["files"]))
