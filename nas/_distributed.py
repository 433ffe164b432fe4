"""Process-group set-up that works alone, under the deepspeed launcher, and on multi-node hostfiles."""

from __future__ import annotations

import os
import socket
from typing import Any

import torch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_env() -> None:
    """A single process without a launcher still needs the rank variables DeepSpeed reads."""
    if "WORLD_SIZE" in os.environ and "RANK" in os.environ:
        os.environ.setdefault("LOCAL_RANK", "0")
        return
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(_free_port()))


def verbose() -> bool:
    """``nas --verbose`` (or NAS_VERBOSE=1): show DeepSpeed's and torch's notices and warnings."""
    from nas._words import parse_bool

    return (parse_bool(os.environ.get("NAS_VERBOSE"), default=False)
            or os.environ.get("NAS_DEEPSPEED_LOG", "").lower() in ("1", "info", "debug"))


def _quiet_output():
    """Where set-up chatter goes: stderr when verbose, else a buffer (shown if set-up fails)."""
    import contextlib
    import io
    import sys

    if verbose():
        return contextlib.redirect_stdout(sys.stderr)

    @contextlib.contextmanager
    def captured():
        buf = io.StringIO()
        try:
            with contextlib.redirect_stdout(buf):
                yield
        except BaseException:
            sys.stderr.write(buf.getvalue())
            raise

    return captured()


def quiet_deepspeed():
    """Import DeepSpeed with its log lines on stderr (stdout is for results, e.g. ``--json``).

    By default a CPU run's terminal stays clean: torch's "No CUDA runtime is found", DeepSpeed's
    op-build notice and its warnings (e.g. the scheduler's) are hidden; ``--verbose`` shows them."""
    import logging
    import sys

    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    if not verbose():
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    with _quiet_output():
        import deepspeed
        from deepspeed.utils import logger

    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stdout, sys.__stdout__):
            handler.setStream(sys.__stderr__)
    if os.environ.get("NAS_DEEPSPEED_LOG", "").lower() in ("1", "info", "debug"):
        pass
    elif verbose():
        logger.setLevel(logging.WARNING)
    else:
        logger.setLevel(logging.ERROR)
    return deepspeed


def init() -> None:
    """Initialise torch.distributed through DeepSpeed (gloo on CPU, nccl on GPUs)."""
    import contextlib
    import sys

    deepspeed = quiet_deepspeed()
    ensure_env()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    hook = sys.excepthook
    with _quiet_output():  # it prints while building its comm op
        deepspeed.init_distributed(dist_backend=backend, verbose=False)
    if world_size() == 1 and not verbose():
        sys.excepthook = hook  # no "[rank0]:" before every line of a traceback of one process


def rank() -> int:
    return torch.distributed.get_rank() if torch.distributed.is_initialized() else 0


def world_size() -> int:
    return torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def broadcast(obj: Any) -> Any:
    """Rank 0's value of ``obj`` on every rank (so all ranks train the same child)."""
    if world_size() == 1:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_sum(values: list[float]) -> list[float]:
    if world_size() == 1:
        return values
    # NCCL reduces GPU tensors only; gloo (CPU) reduces CPU tensors.
    device = "cuda" if torch.distributed.get_backend() == "nccl" else "cpu"
    t = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return t.tolist()


def all_gather_cat(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Every rank's ``tensors`` concatenated in rank order (dim 0), on every rank."""
    if world_size() == 1:
        return tensors
    boxes: list[Any] = [None] * world_size()
    torch.distributed.all_gather_object(boxes, [t.cpu() for t in tensors])
    return tuple(torch.cat([box[i] for box in boxes]) for i in range(len(tensors)))


def barrier() -> None:
    if world_size() > 1:
        torch.distributed.barrier()
