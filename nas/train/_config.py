"""The resolved configuration of a training run, and the DeepSpeed config it trains with."""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .._errors import NasUsageError

MODES = ("uniform", "magic-t", "magic-a", "magic-at", "fixed")
OBJECTIVES = ("task", "mlm")
ALIGNMENTS = ("logits", "hidden")

# Mirrors ds_configs/cpu.json (a test keeps them equal) so an installed wheel needs no repo files.
DEFAULT_DS_CONFIG: dict[str, Any] = {
    "train_batch_size": 64,
    "gradient_accumulation_steps": 1,
    "optimizer": {
        "type": "AdamW",
        "params": {"lr": 0.002, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01,
                   "torch_adam": True},
    },
    "scheduler": {"type": "WarmupCosineLR", "params": {"warmup_num_steps": "auto",
                                                      "total_num_steps": "auto"}},
    "gradient_clipping": 1.0,
    "bf16": {"enabled": False},
    "fp16": {"enabled": False},
    "zero_optimization": {"stage": 0},
    "steps_per_print": 1000000000,
    "wall_clock_breakdown": False,
}


@dataclass
class TrainConfig:
    space: str
    out: str
    task: Optional[str] = None  # default: the space's embedded task
    preset: str = "tiny"
    mode: str = "uniform"
    objective: str = "task"
    steps: int = 2000
    seed: int = 0
    ds_config: Optional[str] = None
    batch_size: Optional[int] = None  # global batch; default from the ds_config
    lr: Optional[float] = None  # default from the ds_config
    warmup_steps: Optional[int] = None  # default: 5% of steps
    arch: Optional[str] = None  # mode "fixed": standalone training of this child
    init_from: Optional[str] = None  # a super-net run to inherit weights from
    align: str = "logits"
    align_lambda: float = 1.0
    align_warmup: Optional[int] = None  # default: 20% of steps with no alignment
    align_ramp: Optional[int] = None  # default: 20% of steps ramping lambda up
    align_temperature: float = 1.0
    anchor_every: Optional[int] = None  # default: steps // 20
    anchor_margin: float = 0.0
    anchor_batches: int = 4
    eval_batch_size: int = 256
    save_every: Optional[int] = None  # default: steps // 4
    keep_checkpoints: int = 2
    mlm_probability: float = 0.15
    data_dir: Optional[str] = None
    tokenizer: Optional[str] = None
    task_seed: int = 0
    image_size: Optional[int] = None
    num_workers: int = 0
    tensorboard: bool = False
    space_overrides: dict[str, Any] = field(default_factory=dict)

    def resolve(self) -> "TrainConfig":
        """Check choices and fill step-dependent defaults."""
        if self.mode not in MODES:
            raise NasUsageError(f"unknown mode '{self.mode}'; choose from: {', '.join(MODES[:4])}")
        if self.objective not in OBJECTIVES:
            raise NasUsageError(f"unknown objective '{self.objective}'; choose from: task, mlm")
        if self.align not in ALIGNMENTS:
            raise NasUsageError(f"unknown alignment '{self.align}'; choose from: logits, hidden")
        if self.steps < 1:
            raise NasUsageError(f"--steps must be >= 1 (got {self.steps})")
        if (self.mode == "fixed") != (self.arch is not None):
            raise NasUsageError("a fixed-arch run needs --arch, and --arch needs mode fixed")
        c = dataclasses.replace(self)
        c.warmup_steps = max(1, _default(c.warmup_steps, c.steps * 0.05))
        c.align_warmup = _default(c.align_warmup, c.steps * 0.2)
        c.align_ramp = _default(c.align_ramp, c.steps * 0.2)
        c.anchor_every = max(1, _default(c.anchor_every, c.steps / 20))
        c.save_every = max(1, _default(c.save_every, c.steps / 4))
        return c

    @property
    def uses_anchor(self) -> bool:
        return self.mode in ("magic-a", "magic-at")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _default(value: Optional[int], fallback: float) -> int:
    return int(value) if value is not None else int(fallback)


def load_ds_config(path: Optional[str]) -> dict[str, Any]:
    if path is None:
        return copy.deepcopy(DEFAULT_DS_CONFIG)
    p = Path(path)
    if not p.exists():
        raise NasUsageError(f"DeepSpeed config not found: {p}; see ds_configs/ for examples")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise NasUsageError(f"DeepSpeed config {p} is not valid JSON: {exc}") from None


def resolve_ds_config(ds: dict[str, Any], cfg: TrainConfig, world: int) -> dict[str, Any]:
    """Fill batch sizes, learning rate and schedule lengths from the run's options."""
    ds = copy.deepcopy(ds)
    accum = int(ds.get("gradient_accumulation_steps", 1))
    global_batch = cfg.batch_size or ds.get("train_batch_size")
    if global_batch is None:
        global_batch = int(ds["train_micro_batch_size_per_gpu"]) * accum * world
    if global_batch % (accum * world):
        raise NasUsageError(
            f"global batch {global_batch} is not divisible by gradient_accumulation_steps {accum} "
            f"x world size {world}; choose a --batch-size that is"
        )
    ds["train_batch_size"] = global_batch
    ds["train_micro_batch_size_per_gpu"] = global_batch // (accum * world)
    ds["gradient_accumulation_steps"] = accum
    if cfg.lr is not None and "optimizer" in ds:
        ds["optimizer"]["params"]["lr"] = cfg.lr
    sched = ds.get("scheduler", {}).get("params", {})
    for key, value in (("total_num_steps", cfg.steps), ("warmup_num_steps", cfg.warmup_steps),
                       ("warmup_max_lr", ds.get("optimizer", {}).get("params", {}).get("lr"))):
        if sched.get(key) == "auto":
            sched[key] = value
    stage = ds.get("zero_optimization", {}).get("stage", 0)
    if stage == 3:
        raise NasUsageError(
            "ZeRO stage 3 is unsafe for super-nets (each step runs a different subset of parameters, "
            "which breaks its parameter gathering); use stage 0, 1 or 2"
        )
    return ds
