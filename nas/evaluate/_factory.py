"""The evaluator a search's options describe (``nas search --run`` / ``--table`` / ``--estimator``), as a picklable
factory each search worker calls, and the reference table a super-net's found child is looked up in."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Optional

from nas._errors import NasUsageError


def _supernet_evaluator(run_dir: str):
    try:
        from nas.evaluate import SupernetEvaluator
    except ImportError as exc:
        raise NasUsageError(f"super-net evaluation is unavailable ({exc}); reinstall magic-nas") from None
    return SupernetEvaluator(run_dir)


def _table_evaluator(space: str, table: str, metric: Optional[str], arch_column: Optional[str]):
    from nas.evaluate import TableEvaluator

    return TableEvaluator(space, table, metric, arch_column=arch_column)


def _zero_cost_evaluator(name: str, space: str, preset: Optional[str], task: Optional[str],
                         data_dir: Optional[str], seed: int, batch_size: int):
    from nas.evaluate import ZeroCostEvaluator

    return ZeroCostEvaluator(name, space, preset or "tiny", task=task, data_dir=data_dir, seed=seed,
                             batch_size=batch_size)


def evaluator_factory(run, space, table, metric, arch_column, estimator=None, preset=None, task=None,
                      data_dir=None, seed=0, estimator_batch_size=64):
    """A picklable factory of the evaluator the options describe (each worker calls it).

    With both --run and --table the super-net is searched and the table is only the reference
    the found child is looked up in (see :func:`reference_table`); likewise --estimator (a
    zero-cost estimator on --space) with --table."""
    from nas.evaluate._zero_cost import SUPERNET, parse_estimators

    if estimator is not None and estimator != SUPERNET:
        names = parse_estimators(estimator)
        if len(names) > 1:
            raise NasUsageError(f"--estimator {estimator}: a search scores one child at a time, with "
                                "one estimator; an ensemble ranks a fixed set of children (`nas rank "
                                f"--estimator {estimator}`)")
        if run is not None:
            raise NasUsageError(f"--estimator {estimator} scores children without a super-net: drop "
                                "--run (or use --estimator supernet) and give --space")
        if space is None:
            raise NasUsageError(f"--estimator {estimator} needs --space, the space to search "
                                "(e.g. --space nb201)")
        if table is None and (metric is not None or arch_column is not None):
            raise NasUsageError("--metric and --arch-column go with --table (the reference the found "
                                "child is looked up in)")
        factory = functools.partial(_zero_cost_evaluator, names[0], space, preset, task,
                                    None if data_dir is None else str(data_dir), seed,
                                    estimator_batch_size)
        factory()  # every option checked here, before the search folder is touched
        return factory
    if estimator == SUPERNET and run is None:
        raise NasUsageError("--estimator supernet searches a trained super-net: give --run RUN_DIR")
    for flag, value in (("--preset", preset), ("--task", task), ("--data-dir", data_dir)):
        if value is not None:
            raise NasUsageError(f"{flag} goes with --estimator (a zero-cost estimator on --space); "
                                "a --run or --table knows its space and data")
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


def reference_table(run, table, metric, arch_column, estimator=None, space=None):
    """With --run (or a zero-cost --estimator) and --table: the table of trained results the found
    child is looked up in."""
    zero_cost = estimator is not None and estimator != "supernet"
    if table is None or (run is None and not zero_cost):
        return None
    if zero_cost:
        if metric is None:
            raise NasUsageError("--table with --estimator is the reference the found child is looked "
                                "up in: name its column of trained results with --metric")
        from nas.evaluate import TableEvaluator

        return TableEvaluator(space, str(table), metric, arch_column=arch_column)
    if metric is None:
        raise NasUsageError("--table with --run is the reference the found child is looked up in: "
                            "name its column of trained results with --metric (e.g. cifar10-test)")
    from nas._rundir import load_run_config
    from nas.evaluate import TableEvaluator

    return TableEvaluator(load_run_config(Path(run))["space"], str(table), metric, arch_column=arch_column)
