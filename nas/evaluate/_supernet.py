"""Child evaluation through a trained super-net: load a run once, evaluate many archs.

For spaces with BatchNorm each child's BN statistics are recalibrated on a few training batches
before it is evaluated (the super-net's running statistics mix all children and give near-chance
estimates). Results are cached by arch in memory and in ``RUN_DIR/eval_cache.json``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from torch import nn

from nas import _rundir as rundir
from nas._errors import NasUsageError
from nas.evaluate._base import Evaluator
from nas.evaluate._forward import predict, to_device
from nas._rundir import atomic_write_json, load_run_config, read_json
from nas.tasks._base import model_kwargs

# Training batches (of 64) a child's BatchNorm statistics are re-estimated on before it is scored.
# 4: the setting of the NAS-Bench-201 tables (16 gave the same ranking there), and on mobilenetv2
# 2-5 batches gave the full effect of 20 (benchmarks/README.md) at a quarter of the cost.
DEFAULT_BN_RECAL_BATCHES = 4


def recalibrate_bn(model: nn.Module, batches: Iterable[dict[str, Any]], device="cpu") -> int:
    """Reset BN running statistics and re-estimate them (cumulative average) on ``batches``."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return 0
    saved = [(m, m.momentum) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    was_training = model.training
    model.train()
    n = 0
    with torch.no_grad():
        for batch in batches:
            batch = to_device(batch, device)
            model(batch["input"], **model_kwargs(batch))
            n += 1
    for m, momentum in saved:
        m.momentum = momentum
    model.train(was_training)
    return n


class SupernetEvaluator(Evaluator):
    """Evaluates children of the super-net in ``run_dir`` on a split of its task."""

    def __init__(self, run_dir: str | Path, split: str = "dev",
                 bn_recal_batches: int = DEFAULT_BN_RECAL_BATCHES, batch_size: int = 256,
                 device: str | None = None, use_cache: bool = True, channels_last: bool | None = None):
        from nas.train import TrainConfig, build_model, build_space, build_task, load_weights

        if isinstance(bn_recal_batches, bool) or not isinstance(bn_recal_batches, int) or bn_recal_batches < 0:
            raise NasUsageError(f"--bn-recal-batches must be an integer >= 0 (0: off), got {bn_recal_batches}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise NasUsageError(f"the evaluation batch size must be an integer >= 1, got {batch_size}")
        self.run_dir = Path(run_dir)
        stored = load_run_config(self.run_dir)
        self.cfg = TrainConfig.from_dict(stored["train"])
        if not (self.run_dir / rundir.WEIGHTS).exists():
            raise NasUsageError(
                f"{self.run_dir} has no trained weights yet (supernet.safetensors); "
                "let `nas train` reach its first checkpoint"
            )
        self.task = build_task(self.cfg, self.run_dir)
        if split not in self.task.splits:
            raise NasUsageError(f"unknown split '{split}'; choose from: {', '.join(self.task.splits)}")
        self.space = build_space(self.cfg, self.task)
        self.model = build_model(self.cfg, self.space, self.task)
        load_weights(self.model, self.run_dir / rundir.WEIGHTS)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")  # the GPU when there is one
        self.model.to(device).eval()
        self.device = device
        self.split = split
        self.batch_size = batch_size
        self.bn_recal_batches = bn_recal_batches if self.space.has_batchnorm else 0
        # Image children run channels-last (NHWC): BN recalibration and scoring of an nb201 tiny
        # child about 2x faster on an AVX-512 CPU (benchmarks/README.md); the weights are unchanged.
        self.channels_last = (self.task.modality == "image") if channels_last is None else bool(channels_last)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.primary_metric = self.task.primary_metric
        self.greater_is_better = self.task.greater_is_better
        self._batches: list[dict[str, Any]] | None = None
        self._recal: list[dict[str, Any]] | None = None
        self._lock = threading.Lock()
        self._cache_path = self.run_dir / rundir.EVAL_CACHE
        self._cache: dict[str, dict[str, float]] = {}
        self._cache_key = f"{split}|bn{self.bn_recal_batches}"
        if use_cache and self._cache_path.exists():
            self._cache = read_json(self._cache_path, "evaluation cache").get(self._cache_key, {})
        self.use_cache = use_cache

    def batches(self) -> list[dict[str, Any]]:
        if self._batches is None:
            from nas.train._data import eval_batches

            self._batches = [self._layout(b) for b in eval_batches(
                self.task.dataset(self.split), self.task.collate, self.batch_size)]
        return self._batches

    def recal_batches(self) -> list[dict[str, Any]]:
        """Fixed training batches (seeded, same for every child) for BN recalibration."""
        if self._recal is None:
            from nas.train._data import StepBatchSampler

            data = self.task.dataset("train")
            sampler = StepBatchSampler(len(data), 64, 1, self.cfg.seed + 17, 0, 1, 0, self.bn_recal_batches)
            self._recal = [self._layout(self.task.collate([data[i] for i in idx])) for idx in sampler]
        return self._recal

    def _layout(self, batch: dict[str, Any]) -> dict[str, Any]:
        x = batch["input"]
        if self.channels_last and x.dim() == 4:
            batch = {**batch, "input": x.contiguous(memory_format=torch.channels_last)}
        return batch

    def child(self, arch: Sequence[str]) -> nn.Module:
        """The standalone child with inherited weights (and recalibrated BN when applicable)."""
        child = self.space.child(self.model, arch).to(self.device)
        if self.channels_last:
            child.to(memory_format=torch.channels_last)
        if self.bn_recal_batches:
            recalibrate_bn(child, self.recal_batches(), self.device)
        return child.eval()

    def evaluate(self, arch: Sequence[str]) -> dict[str, float]:
        arch = self.space.parse(arch)
        key = self.space.encode(arch)
        with self._lock:
            if key in self._cache:
                return dict(self._cache[key])
            if self.bn_recal_batches:
                model, run_arch = self.child(arch), None
            else:
                model, run_arch = self.model, arch
            with torch.no_grad():
                logits, labels = predict(model, run_arch, self.batches(), self.device)
            metrics = {k: float(v) for k, v in self.task.metrics(logits, labels).items()}
            self._cache[key] = metrics
            if self.use_cache:
                self._save_cache()
            return dict(metrics)

    def evaluate_many(self, archs: Iterable[Sequence[str]], progress: bool = False) -> list[dict[str, float]]:
        archs = list(archs)
        if not progress:
            return [self.evaluate(a) for a in archs]
        from nas.report._progress import track

        return [self.evaluate(a) for a in track(archs, "evaluate")]

    def score(self, arch: Sequence[str]) -> float:
        return self.evaluate(arch)[self.primary_metric]

    def _save_cache(self) -> None:
        data = read_json(self._cache_path, "evaluation cache") if self._cache_path.exists() else {}
        data[self._cache_key] = self._cache
        atomic_write_json(self._cache_path, data)
