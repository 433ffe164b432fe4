"""Super-net weights for downstream use, as safetensors: no pickle, so safe to share and load."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .._errors import NasUsageError
from .._rundir import file_mode


def save_weights(module: torch.nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata=metadata or {})
    os.chmod(tmp, file_mode())  # safetensors writes 0600
    os.replace(tmp, path)


def load_state(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.exists():
        raise NasUsageError(f"weights not found: {path}; has the run saved a checkpoint yet?")
    try:
        return load_file(str(path))
    except Exception as exc:
        raise NasUsageError(f"weights file {path} is corrupt or not safetensors ({exc})") from None


def load_weights(module: torch.nn.Module, path: str | Path, partial: bool = False) -> list[str]:
    """Load ``path`` into ``module``; ``partial`` takes the keys ``module`` has (weight inheritance
    into a child) and skips the task head when its shape differs."""
    state = load_state(path)
    own = module.state_dict()
    if partial:
        take = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        module.load_state_dict(take, strict=False)
        return sorted(take)
    missing = [k for k in own if k not in state]
    if missing:
        raise NasUsageError(f"{path} does not match this model (missing {missing[:3]}); "
                            "was it written for another space or preset?")
    wrong = [k for k in own if own[k].shape != state[k].shape]
    if wrong:
        k = wrong[0]
        raise NasUsageError(
            f"{path} does not match the model its run config builds ({k}: {tuple(state[k].shape)} "
            f"saved, {tuple(own[k].shape)} now); was it trained with another version of the task "
            "or data? Retrain it or use the matching version"
        )
    module.load_state_dict({k: state[k] for k in own})
    return sorted(own)
