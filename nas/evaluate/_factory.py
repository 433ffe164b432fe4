"""The evaluator a search's options describe (``nas search --run`` / ``--table``), as a picklable
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
    from nas._rundir import load_run_config
    from nas.evaluate import TableEvaluator

    return TableEvaluator(load_run_config(Path(run))["space"], str(table), metric, arch_column=arch_column)
