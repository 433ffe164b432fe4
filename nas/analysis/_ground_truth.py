"""Ground truth for ranking: children trained standalone with one budget, cached for reuse.

One JSON file per (space, preset, task, steps, seed) holds ``{arch: {"dev": metrics, "test": ...}}``,
so several super-nets (four modes, several seeds) are ranked against the same ground truth without
retraining it. Retraining runs in this process or in ``jobs`` worker processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Iterable

from nas._rundir import atomic_write_json, read_json

DIST_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def default_cache_dir() -> Path:
    """``$NAS_CACHE_DIR`` or ``~/.cache/magic-nas``; ground truth lives in its ``ground-truth/``."""
    return Path(os.environ.get("NAS_CACHE_DIR", Path.home() / ".cache" / "magic-nas"))


class GroundTruth:
    def __init__(self, space: str, preset: str, task: str, steps: int, seed: int,
                 cache_dir: str | Path | None = None, train_options: dict[str, Any] | None = None):
        self.space, self.preset, self.task, self.steps, self.seed = space, preset, task, steps, seed
        self.train_options = {k: v for k, v in (train_options or {}).items() if v is not None}
        if "data_dir" in self.train_options:  # one cache key per folder, however it is spelled
            self.train_options["data_dir"] = str(Path(self.train_options["data_dir"]).resolve())
        cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        # Training options (batch size, lr, data, ...) change the ground truth: they key the file too.
        digest = hashlib.sha1(json.dumps(self.train_options, sort_keys=True, default=str).encode()).hexdigest()[:8]
        name = f"{space}-{preset}-{task.replace(':', '_')}-steps{steps}-seed{seed}-{digest}.json"
        self.path = cache_dir / "ground-truth" / name
        self.results: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            self.results = read_json(self.path, "ground-truth cache").get("results", {})

    def key(self) -> dict[str, Any]:
        return {"space": self.space, "preset": self.preset, "task": self.task, "steps": self.steps,
                "seed": self.seed, "train_options": self.train_options}

    def missing(self, archs: Iterable[str]) -> list[str]:
        return [a for a in archs if a not in self.results]

    def _store(self, arch: str, result: dict[str, Any]) -> None:
        self.results[arch] = result
        atomic_write_json(self.path, {"key": self.key(), "results": self.results})

    def compute(self, archs: Iterable[str], jobs: int = 1, progress: bool = True) -> None:
        """Retrain every arch not yet cached; each result is saved as soon as it is known."""
        todo = self.missing(archs)
        if not todo:
            return
        from nas.report._progress import make_progress

        args = [(self.space, a, self.task, self.steps, self.seed, self.preset, self.train_options) for a in todo]
        with make_progress(unit="children", enabled=progress) as bar:
            task_id = bar.add_task("ground truth (standalone training)", total=len(todo))
            if jobs <= 1:
                for a in args:
                    self._store(a[1], _retrain_one(*a))
                    bar.advance(task_id)
                return
            import multiprocessing

            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init) as pool:
                futures = {pool.submit(_retrain_one, *a): a[1] for a in args}
                for future in as_completed(futures):
                    self._store(futures[future], future.result())
                    bar.advance(task_id)

    def value(self, arch: str, split: str, metric: str) -> float:
        return float(self.results[arch][split][metric])


def _worker_init() -> None:
    """Each worker is its own single-process world, on its own port; one thread per worker."""
    import torch

    for var in DIST_VARS:
        os.environ.pop(var, None)
    torch.set_num_threads(1)


def _retrain_one(space: str, arch: str, task: str, steps: int, seed: int, preset: str,
                 train_options: dict[str, Any]) -> dict[str, Any]:
    from nas.child._retrain import retrain

    tmp = Path(tempfile.mkdtemp(prefix="nas-gt-"))
    try:
        result = retrain(space, arch, tmp / "run", task=task, steps=steps, seed=seed, preset=preset,
                         show_progress=False, **train_options)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"dev": result["metrics"]["dev"], "test": result["metrics"]["test"],
            "params": result["params"], "macs": result["macs"], "seconds": result["seconds"]}
