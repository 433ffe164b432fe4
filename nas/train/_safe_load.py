"""Resuming never unpickles arbitrary objects.

DeepSpeed reads its checkpoint files with ``torch.load(weights_only=False)``, which runs whatever
code a pickle names: a planted ``mp_rank_00_model_states.pt`` would run on ``--resume``. While we
load a checkpoint, every ``torch.load`` is forced to ``weights_only=True`` (tensors, plain Python
containers and numbers only), allowing exactly the few DeepSpeed classes its own files hold
(ZeRO's loss scaler, stage enum and parameter slice addresses). Anything else is refused with one
line naming the file, before any of its objects is built.
"""

from __future__ import annotations

import contextlib
import pickle
import re
from pathlib import Path
from typing import Any, Iterator

import torch

from .._errors import NasUsageError


def deepspeed_safe_globals() -> list[Any]:
    """The non-plain classes DeepSpeed writes into its checkpoint files (ZeRO 1/2, fp16/bf16)."""
    out: list[Any] = []
    for module, names in (
        ("deepspeed.runtime.fp16.loss_scaler", ("LossScaler", "DynamicLossScaler")),
        ("deepspeed.runtime.zero.config", ("ZeroStageEnum",)),
        ("deepspeed.utils.tensor_fragment", ("fragment_address",)),
    ):
        try:
            mod = __import__(module, fromlist=list(names))
        except ImportError:  # pragma: no cover - another DeepSpeed layout
            continue
        out.extend(getattr(mod, name) for name in names if hasattr(mod, name))
    return out


def _refusal(path: Any, exc: Exception) -> NasUsageError:
    text = str(exc)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    what = f"it names {found.group(1)}" if found else "objects outside the allow-list"
    return NasUsageError(
        f"refusing to load checkpoint file {path}: it holds more than tensors and plain data "
        f"({what}), and loading it could run code; delete it and resume from an older "
        "checkpoint, or start a new run"
    )


@contextlib.contextmanager
def weights_only_loads() -> Iterator[None]:
    """Within the block, ``torch.load`` always loads with ``weights_only=True``."""
    original = torch.load

    def safe_load(f, map_location=None, pickle_module=None, *, weights_only=None, **kwargs):
        try:
            return original(f, map_location=map_location, weights_only=True, **kwargs)
        except pickle.UnpicklingError as exc:
            if "weights only" not in str(exc).lower():
                raise  # a truncated or foreign file: the caller reports it as corrupt
            raise _refusal(f if isinstance(f, (str, Path)) else getattr(f, "name", f), exc) from None

    allowed = deepspeed_safe_globals()
    if hasattr(torch.serialization, "safe_globals"):
        scope = torch.serialization.safe_globals(allowed)
    else:  # torch 2.4: no scoped allow-list; these few DeepSpeed classes stay allowed
        torch.serialization.add_safe_globals(allowed)
        scope = contextlib.nullcontext()
    with scope:
        torch.load = safe_load
        try:
            yield
        finally:
            torch.load = original
