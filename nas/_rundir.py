"""The run-directory layout, said once: every file name a stage writes or reads, the readers, and
atomic writes.

A training run (``nas train``, ``nas retrain``)::

    RUN/config.json             resolved config with versions (exists once the run was built)
    RUN/train_summary.json      written when training finished
    RUN/supernet.safetensors    weights for downstream use (no pickle)
    RUN/metrics.jsonl           one row per logged step
    RUN/checkpoints/latest.json the checkpoint in charge (DeepSpeed checkpoints beside it)
    RUN/eval_cache.json         the super-net evaluator's scores by arch
    RUN/result.json             ``nas retrain``: the child's metrics and costs

A search folder (``nas search --out``) holds ``search.json``, ``evaluations.csv``/``.json``,
``summary.json`` and plots; a pipeline folder (``nas run``) holds ``config.json`` with a
``pipeline`` section, ``supernet/`` (a training run), ``search/``, ``retrain/`` and ``report.md``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

from nas._errors import NasUsageError

# ---- a training run -------------------------------------------------------------------------------
CONFIG = "config.json"
TRAIN_SUMMARY = "train_summary.json"
WEIGHTS = "supernet.safetensors"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
LATEST = "latest.json"  # inside CHECKPOINTS
EVAL_CACHE = "eval_cache.json"
RESULT = "result.json"  # nas retrain
# ---- a search folder ------------------------------------------------------------------------------
SEARCH_CSV = "evaluations.csv"
SEARCH_JSON = "evaluations.json"
SEARCH_SETTINGS = "search.json"
SEARCH_SUMMARY = "summary.json"
SEARCH_LOCK = ".lock"
SEARCH_PLOT = "best_so_far.png"
SEARCH_PARETO_PLOT = "pareto.png"
# ---- a pipeline folder (nas run) ------------------------------------------------------------------
PIPELINE_SUPERNET = "supernet"
PIPELINE_SEARCH = "search"
PIPELINE_RETRAIN = "retrain"
PIPELINE_REPORT = "report.md"


def is_run(run_dir: str | Path) -> bool:
    """Has ``run_dir`` been built as a training run (its config written)?"""
    return (Path(run_dir) / CONFIG).exists()


def is_trained(run_dir: str | Path) -> bool:
    """Has training in ``run_dir`` finished (its summary written)?"""
    return (Path(run_dir) / TRAIN_SUMMARY).exists()


def has_checkpoint(run_dir: str | Path) -> bool:
    return (Path(run_dir) / CHECKPOINTS / LATEST).exists()


def read_train_summary(run_dir: str | Path) -> Any:
    return read_json(Path(run_dir) / TRAIN_SUMMARY, "train summary")


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())  # mkstemp's 0600 would hide results from other users
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def file_mode() -> int:
    """The mode a plain ``open()`` would give a new file (0o666 less the umask): temp files and
    safetensors' writer use 0600, which would hide results from the other users of a shared run."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def json_default(obj: Any) -> Any:
    """``json.dumps(default=...)`` for tensors/numpy scalars, sets and tuples."""
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)


def read_json(path: str | Path, what: str = "file") -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise NasUsageError(f"{what} not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NasUsageError(f"{what} {path} is not valid JSON ({exc}); restore or delete it") from None


def device_name() -> str:
    """The accelerator a run computes on ("cpu" without one): timings and numerics depend on it."""
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def versions() -> dict[str, str]:
    """Versions of Python and the libraries a run depends on, for reproducibility."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0], "platform": platform.platform(), "device": device_name()}
    for dist in ("magic-nas", "torch", "deepspeed", "optuna", "timm", "numpy", "datasets", "tokenizers"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return out


def load_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The resolved config of a training run, with a clear error when RUN_DIR is not a run."""
    run_dir = Path(run_dir)
    if not is_run(run_dir):
        raise NasUsageError(
            f"{run_dir} is not a training run (no config.json); "
            "give the --out directory of a `nas train` run"
        )
    config = read_json(run_dir / CONFIG, "run config")
    if isinstance(config, dict) and "pipeline" in config and "train" not in config:
        raise NasUsageError(
            f"{run_dir} is a `nas run` pipeline folder, not a training run; its super-net run is "
            f"{run_dir / PIPELINE_SUPERNET} (give that folder)"
        )
    if not isinstance(config, dict) or not isinstance(config.get("train"), dict):
        raise NasUsageError(
            f"{run_dir / CONFIG} is not the config of a `nas train` run (no 'train' section); "
            "give the --out directory of a `nas train` run"
        )
    return config
