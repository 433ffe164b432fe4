"""The resolved configuration of a training run, and the DeepSpeed config it trains with."""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .._errors import NasUsageError

MODES = ("uniform", "magic-t", "magic-a", "magic-at", "fixed")
OBJECTIVES = ("task", "mlm")
ALIGNMENTS = ("logits", "hidden")
WALKS = ("balanced", "plain")

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
    walk: str = "balanced"  # MAGIC-T's walk: balanced (even option coverage) or plain (the paper's)
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
        if self.walk not in WALKS:
            raise NasUsageError(f"unknown walk '{self.walk}'; choose from: {', '.join(WALKS)}")
        if self.align not in ALIGNMENTS:
            raise NasUsageError(f"unknown alignment '{self.align}'; choose from: logits, hidden")
        check_field_types(type(self), self.to_dict())
        self.check_values()
        if (self.mode == "fixed") != (self.arch is not None):
            raise NasUsageError("a fixed-arch run needs --arch, and --arch needs mode fixed")
        c = dataclasses.replace(self)
        c.warmup_steps = max(1, _default(c.warmup_steps, c.steps * 0.05))
        c.align_warmup = _default(c.align_warmup, c.steps * 0.2)
        c.align_ramp = _default(c.align_ramp, c.steps * 0.2)
        c.anchor_every = max(1, _default(c.anchor_every, c.steps / 20))
        c.save_every = max(1, _default(c.save_every, c.steps / 4))
        return c

    def check_values(self) -> None:
        """Every numeric option in range: a bad value is one line before anything is written."""
        def need(ok: bool, name: str, rule: str, value: Any) -> None:
            if not ok:
                raise NasUsageError(f"--{name.replace('_', '-')} must be {rule} (got {value})")

        for name in ("steps", "anchor_batches", "eval_batch_size", "keep_checkpoints"):
            need(getattr(self, name) >= 1, name, ">= 1", getattr(self, name))
        for name in ("batch_size", "save_every", "anchor_every", "image_size"):
            value = getattr(self, name)
            need(value is None or value >= 1, name, ">= 1", value)
        for name in ("warmup_steps", "align_warmup", "align_ramp"):
            value = getattr(self, name)
            need(value is None or value >= 0, name, ">= 0", value)
        need(self.num_workers >= 0, "num_workers", ">= 0", self.num_workers)
        need(self.lr is None or (math.isfinite(self.lr) and self.lr > 0), "lr",
             "a finite number > 0", self.lr)
        for name in ("align_lambda", "anchor_margin"):
            value = getattr(self, name)
            need(math.isfinite(value) and value >= 0, name, "a finite number >= 0", value)
        need(math.isfinite(self.align_temperature) and self.align_temperature > 0, "align_temperature",
             "a finite number > 0", self.align_temperature)
        need(0 < self.mlm_probability < 1, "mlm_probability", "between 0 and 1", self.mlm_probability)

    @property
    def uses_anchor(self) -> bool:
        return self.mode in ("magic-a", "magic-at")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin is typing.Union or type(hint).__name__ == "UnionType":
        return any(_type_ok(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, origin or hint)


def _type_name(hint: Any) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    return " or ".join(names.get(typing.get_origin(a) or a, getattr(typing.get_origin(a) or a, "__name__", str(a)))
                       for a in args)


def check_field_types(cls: type, data: dict[str, Any], where: str = "") -> dict[str, Any]:
    """``data`` (keys of the dataclass ``cls``) with each value of its field's type; a value of
    another type is one line naming the key. Numbers written as strings (YAML's ``1e-3``) are
    converted for float fields. Returns the (converted) data."""
    hints = typing.get_type_hints(cls)
    out = dict(data)
    for name, value in data.items():
        hint = hints.get(name)
        if hint is None or _type_ok(value, hint):
            continue
        if isinstance(value, str) and _type_ok(1.5, hint):
            try:
                out[name] = float(value)
                continue
            except ValueError:
                pass
        raise NasUsageError(f"{name} must be {_type_name(hint)}, not {value!r}{where}")
    return out


def _default(value: Optional[int], fallback: float) -> int:
    return int(value) if value is not None else int(fallback)


def load_ds_config(path: Optional[str]) -> dict[str, Any]:
    if path is None:
        return copy.deepcopy(DEFAULT_DS_CONFIG)
    p = Path(path)
    if not p.exists():
        raise NasUsageError(f"DeepSpeed config not found: {p}; see ds_configs/ for examples")
    if p.is_dir():
        raise NasUsageError(f"DeepSpeed config {p} is a folder; give a JSON file (see ds_configs/)")
    try:
        ds = json.loads(p.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise NasUsageError(f"DeepSpeed config {p} is not UTF-8 text; give a JSON file") from None
    except json.JSONDecodeError as exc:
        raise NasUsageError(f"DeepSpeed config {p} is not valid JSON: {exc}") from None
    except OSError as exc:
        raise NasUsageError(f"cannot read DeepSpeed config {p}: {exc.strerror or exc}") from None
    check_ds_config(ds, str(p))
    return ds


# DeepSpeed ignores top-level keys it does not know, so a misspelling would pass silently.
DS_TOP_LEVEL_KEYS = frozenset("""
    train_batch_size train_micro_batch_size_per_gpu gradient_accumulation_steps optimizer scheduler
    fp16 bf16 bfloat16 amp torch_autocast gradient_clipping prescale_gradients
    gradient_predivide_factor gradient_allreduce_op sparse_gradients zero_optimization
    zero_allow_untested_optimizer zero_force_ds_cpu_optimizer steps_per_print wall_clock_breakdown
    dump_state memory_breakdown flops_profiler activation_checkpointing sparse_attention
    data_efficiency curriculum_learning tensorboard wandb csv_monitor comet elasticity
    communication_data_type seq_parallel_communication_data_type aio checkpoint data_types
    autotuning compression_training comms_logger disable_allgather allgather_size
    dataloader_drop_last pipeline progressive_layer_drop eigenvalue quantize_training timers nebula
    hybrid_engine compile use_data_before_expert_parallelism weight_quantization tensor_parallel
    graph_harvesting expert_parallel log_level disable_python_gc model_info vocabulary_size
    dynamic_batching datastates_ckpt sequence_parallel_size legacy_fusion
    lower_precision_safe_modules managed_gradient_accumulation random_ltd zenflow
""".split())
DS_OPTIMIZERS = ("adagrad", "adam", "adamw", "lamb", "muadam", "muadamw", "musgd", "lion", "muon",
                 "onebitadam", "zerooneadam", "onebitlamb", "cpu_adam")
DS_SCHEDULERS = ("LRRangeTest", "OneCycle", "WarmupLR", "WarmupDecayLR", "WarmupCosineLR")


def _close(word: str, choices) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def check_ds_config(ds: Any, where: str = "the DeepSpeed config") -> None:
    """The structure our runs rely on, and no misspelled keys: one line naming the problem."""
    if not isinstance(ds, dict):
        raise NasUsageError(f"DeepSpeed config {where} must hold a JSON object, not a {type(ds).__name__}")
    for key in ds:
        if key not in DS_TOP_LEVEL_KEYS and not key.startswith(("_", "comment")):
            raise NasUsageError(f"unknown DeepSpeed config key '{key}' in {where}{_close(key, DS_TOP_LEVEL_KEYS)}")
    for key in ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps"):
        value = ds.get(key)
        if value is not None and value != "auto" and (
                not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise NasUsageError(f"'{key}' in {where} must be an integer >= 1 (got {value!r})")
    for section, known in (("optimizer", None), ("scheduler", DS_SCHEDULERS)):
        spec = ds.get(section)
        if spec is None:
            continue
        if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
            raise NasUsageError(f"'{section}' in {where} must be an object with a \"type\" name")
        if not isinstance(spec.get("params", {}), dict):
            raise NasUsageError(f"'{section}.params' in {where} must be an object")
        kind = spec["type"]
        import torch

        if section == "optimizer":
            ok = kind.lower() in DS_OPTIMIZERS or isinstance(getattr(torch.optim, kind, None), type)
            names = ("Adam", "AdamW", "Adagrad", "Lamb", "Lion", "SGD", "RMSprop", "Adamax", "NAdam", "RAdam")
        else:
            ok = kind in known or isinstance(getattr(torch.optim.lr_scheduler, kind, None), type)
            names = known
        if not ok:
            raise NasUsageError(
                f"unknown {section} type '{kind}' in {where}{_close(kind, names)}; "
                f"DeepSpeed takes {', '.join(names)} or a torch.optim{'' if section == 'optimizer' else '.lr_scheduler'} class"
            )
    zero = ds.get("zero_optimization", {})
    if not isinstance(zero, dict) or zero.get("stage", 0) not in (0, 1, 2, 3):
        raise NasUsageError(f"'zero_optimization' in {where} must be an object with \"stage\" 0, 1 or 2")


def resolve_ds_config(ds: dict[str, Any], cfg: TrainConfig, world: int) -> dict[str, Any]:
    """Fill batch sizes, learning rate and schedule lengths from the run's options."""
    ds = copy.deepcopy(ds)
    if cfg.ds_config is None:  # the space's own training defaults (e.g. SGD for nb201)
        from .._registry import SPACES

        ds.update(copy.deepcopy(SPACES.get(cfg.space).default_ds_config or {}))
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
        ds["optimizer"].setdefault("params", {})["lr"] = cfg.lr
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
    from ._optim import optimizer_spec

    optimizer_spec(ds.get("optimizer"))  # we build the optimizer from it (_optim.py): check it now
    for precision in ("fp16", "bf16"):
        if isinstance(ds.get(precision), dict) and ds[precision].get("enabled"):
            _check_precision_supported(precision)
    return ds


def ds_config_changes(stored: dict[str, Any], now: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """What a resume's DeepSpeed config changes in how the run trains: ``(key, stored, now)`` for
    the optimizer, precision, clipping, global batch, ZeRO stage and the schedule's shape (not
    its length, nor the warm-up that follows the length: ``--resume --steps N`` extends a run)."""
    def schedule(ds):
        sched = copy.deepcopy(ds.get("scheduler") or {})
        for key in ("total_num_steps", "warmup_num_steps"):
            sched.get("params", {}).pop(key, None)
        return sched or None

    pick = {
        "optimizer": lambda ds: ds.get("optimizer"),
        "scheduler": schedule,
        "fp16": lambda ds: bool((ds.get("fp16") or {}).get("enabled")),
        "bf16": lambda ds: bool((ds.get("bf16") or {}).get("enabled")),
        "gradient_clipping": lambda ds: ds.get("gradient_clipping"),
        "train_batch_size": lambda ds: ds.get("train_batch_size"),
        "zero_optimization.stage": lambda ds: (ds.get("zero_optimization") or {}).get("stage", 0),
    }
    return [(key, f(stored), f(now)) for key, f in pick.items() if f(stored) != f(now)]


def _check_precision_supported(precision: str) -> None:
    """DeepSpeed's own refusal is a traceback from deep inside ``deepspeed.initialize``."""
    from .. import _distributed as dist

    dist.quiet_deepspeed()
    from deepspeed.accelerator import get_accelerator

    accelerator = get_accelerator()
    supported = accelerator.is_fp16_supported() if precision == "fp16" else accelerator.is_bf16_supported()
    if not supported:
        raise NasUsageError(
            f"{precision} is not supported on this device ({accelerator.device_name()}); set "
            f'"{precision}": {{"enabled": false}} in the DeepSpeed config or use ds_configs/cpu.json'
            + (" (bf16 works on CPUs)" if precision == "fp16" else "")
        )
