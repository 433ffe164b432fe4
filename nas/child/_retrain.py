"""Standalone (re)training of one child: the ground truth a super-net's ranking is judged against."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from nas import _rundir as rundir
from nas._errors import NasUsageError
from nas._rundir import atomic_write_json, load_run_config


def retrain(space: str, arch: str, out: str | Path, task: str | None = None, steps: int | None = None,
            seed: int | None = None, preset: str | None = None, init_from: str | None = None,
            resume: bool = False, show_progress: bool = True, **train_options: Any) -> dict[str, Any]:
    """Train ``arch`` from scratch (or from a super-net's weights with ``init_from``) and report
    its dev and test metrics; writes ``OUT/result.json``."""
    from nas.evaluate._supernet import SupernetEvaluator
    from nas.train import TrainConfig, train

    if init_from is not None:
        source = load_run_config(init_from)
        if source["space"] != space:
            raise NasUsageError(
                f"--init-from {init_from} is a '{source['space']}' super-net, not '{space}'; "
                "give a run of the same space"
            )
        if preset is not None and preset != source["preset"]:
            raise NasUsageError(f"--init-from {init_from} has preset '{source['preset']}', not '{preset}'")
        preset = source["preset"]
        task = task or source["task"]
        for key in ("data_dir", "tokenizer", "image_size", "task_seed"):
            if train_options.get(key) is None:  # the super-net's data, unless given
                train_options[key] = source["train"].get(key)
    # What the caller gave (steps 2000 and seed 0 when not): a --resume compares exactly those.
    given = {k: v for k, v in dict(task=task, steps=steps, seed=seed, preset=preset,
                                   init_from=init_from, **train_options).items() if v is not None}
    given.update(mode="fixed", arch=arch)
    cfg = TrainConfig(space=space, out=str(out), **{"preset": "tiny", **given})
    summary = train(cfg, resume=resume, show_progress=show_progress, given=given)
    from nas import _distributed as dist

    if not dist.is_main():
        return {}
    seed = load_run_config(out)["seed"]  # the run's (a resume keeps its seed)
    metrics = {}
    for split in ("dev", "test"):
        evaluator = SupernetEvaluator(out, split=split, bn_recal_batches=0)
        metrics[split] = evaluator.evaluate(arch)
    space_obj = evaluator.space
    parsed = space_obj.parse(arch)
    result = {
        "space": space, "preset": cfg.preset, "task": evaluator.cfg.task,
        "arch": space_obj.encode(parsed), "primary_metric": evaluator.primary_metric,
        "metrics": metrics, **dataclasses.asdict(space_obj.cost(parsed)),
        "steps": summary["steps"], "seconds": summary["seconds"], "seed": seed,
        "init_from": init_from,
    }
    atomic_write_json(Path(out) / rundir.RESULT, result)
    return result
