"""Export a child as a standalone model: weights, arch JSON and a torch.export program.

The ``model.pt2`` program loads with ``torch.export.load`` alone, with neither this package nor the
super-net. A space may add its own formats through :meth:`SearchSpace.export_extra` (mobilenetv2:
the child on timm's EfficientNet builder).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from nas._errors import NasUsageError
from nas._rundir import atomic_write_json


def export_child(run_dir: str | Path, arch: str, out: str | Path, bn_recal_batches: int | None = None,
                 dynamic_batch: bool = True) -> dict[str, Any]:
    from nas.evaluate._supernet import DEFAULT_BN_RECAL_BATCHES, SupernetEvaluator

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise NasUsageError(f"{out} exists and is not empty; choose a new --out (nothing was written)")
    ev = SupernetEvaluator(run_dir, bn_recal_batches=(
        DEFAULT_BN_RECAL_BATCHES if bn_recal_batches is None else bn_recal_batches), use_cache=False)
    if ev.cfg.mode == "fixed":  # a retrained child keeps its own BN statistics
        ev.bn_recal_batches = 0
    parsed = ev.space.parse(arch)
    child = ev.child(parsed).eval()
    # Written into a staging folder beside --out, renamed into place at the end: an interrupted
    # export leaves no half-written model behind.
    final = out
    final.parent.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        info = _write_export(ev, child, parsed, run_dir, out, dynamic_batch)
        if final.exists():
            final.rmdir()  # empty, checked above
        os.replace(out, final)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return info


def _write_export(ev, child, parsed, run_dir, out: Path, dynamic_batch: bool) -> dict[str, Any]:
    from nas.train import save_weights

    save_weights(child, out / "model.safetensors", {"arch": ev.space.encode(parsed)})

    args, kwargs = ev.space.example_input(2)
    module, inputs = _exportable(child, args, kwargs)
    dynamic = None
    if dynamic_batch:
        batch = torch.export.Dim("batch", min=1, max=4096)
        seq = torch.export.Dim("seq", min=2, max=getattr(ev.space.config, "max_positions", 4096))
        # Token ids (and their masks) vary in batch and length; images in batch only.
        dynamic = tuple({0: batch, 1: seq} if not t.is_floating_point() else {0: batch} for t in inputs)
    program = torch.export.export(module, inputs, dynamic_shapes=dynamic)
    torch.export.save(program, str(out / "model.pt2"))

    info = {
        "space": ev.space.name, "preset": ev.space.preset, "arch": ev.space.encode(parsed),
        "config": dataclasses.asdict(ev.space.config), "task": ev.task.describe(),
        "num_outputs": ev.model.num_outputs, "source_run": str(Path(run_dir).resolve()),
        "cost": dataclasses.asdict(ev.space.cost(parsed)),
        "inputs": ["input_ids", "attention_mask", "token_type_ids"] if kwargs else ["images"],
        "files": {"weights": "model.safetensors", "program": "model.pt2"},
        "load": "torch.export.load('model.pt2').module()(*inputs) -> logits",
    }
    info["files"].update(ev.space.export_extra(child, parsed, out))  # a space's own formats
    atomic_write_json(out / "arch.json", info)
    return info


class _TextModel(torch.nn.Module):
    """Explicit positional signature: ``(input_ids, attention_mask, token_type_ids) -> logits``."""

    def __init__(self, child: torch.nn.Module):
        super().__init__()
        self.child = child

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.child(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)


class _ImageModel(torch.nn.Module):
    """Explicit positional signature: ``(images) -> logits``."""

    def __init__(self, child: torch.nn.Module):
        super().__init__()
        self.child = child

    def forward(self, images):
        return self.child(images)


def _exportable(child, args, kwargs):
    if not kwargs:
        return _ImageModel(child).eval(), tuple(args)
    mask = kwargs.get("attention_mask", torch.ones_like(args[0]))
    types = kwargs.get("token_type_ids", torch.zeros_like(args[0]))
    return _TextModel(child).eval(), (args[0], mask, types)
