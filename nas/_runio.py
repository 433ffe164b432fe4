"""Run-directory I/O: atomic writes, resolved configs with versions, and run-dir checks."""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

from ._errors import NasUsageError


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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


def versions() -> dict[str, str]:
    """Versions of Python and the libraries a run depends on, for reproducibility."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for dist in ("magic-nas", "torch", "deepspeed", "optuna", "timm", "numpy", "datasets", "tokenizers"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return out


def load_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The resolved config of a training run, with a clear error when RUN_DIR is not a run."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists():
        raise NasUsageError(
            f"{run_dir} is not a training run (no config.json); "
            "give the --out directory of a `nas train` run"
        )
    config = read_json(run_dir / "config.json", "run config")
    if isinstance(config, dict) and "pipeline" in config and "train" not in config:
        raise NasUsageError(
            f"{run_dir} is a `nas run` pipeline folder, not a training run; its super-net run is "
            f"{run_dir / 'supernet'} (give that folder)"
        )
    if not isinstance(config, dict) or not isinstance(config.get("train"), dict):
        raise NasUsageError(
            f"{run_dir / 'config.json'} is not the config of a `nas train` run (no 'train' section); "
            "give the --out directory of a `nas train` run"
        )
    return config
