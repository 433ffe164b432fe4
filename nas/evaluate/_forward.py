"""Scoring a child through a (super-)net: prediction over batches, BN handling, MLM masking."""

from __future__ import annotations

import contextlib
from typing import Any, Iterable, Iterator

import torch
from torch import nn

from nas.tasks._base import model_kwargs

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


@contextlib.contextmanager
def deterministic_mode(model: nn.Module, batch_stats: bool) -> Iterator[None]:
    """Dropout off; with ``batch_stats`` BatchNorm normalises with the batch's own statistics
    without touching the running ones (a shared super-net's running statistics belong to no single
    child), else plain eval mode. Gradients still flow."""
    was_training = model.training
    saved = []
    try:
        if batch_stats:
            model.train()
            for m in model.modules():
                if isinstance(m, nn.Dropout) or m.__class__.__name__.startswith("Dropout"):
                    m.eval()
                elif isinstance(m, _BN):
                    saved.append((m, m.momentum))
                    m.momentum = 0.0
        else:
            model.eval()
        yield
    finally:
        for m, momentum in saved:
            m.momentum = momentum
        model.train(was_training)


@contextlib.contextmanager
def scoring_mode(model: nn.Module, batch_stats: bool) -> Iterator[None]:
    """:func:`deterministic_mode` without gradients: for scoring children and anchor targets."""
    with deterministic_mode(model, batch_stats), torch.no_grad():
        yield


def forward(model: nn.Module, arch: Any, batch: dict[str, Any], return_hidden: bool = False):
    x = batch["input"]
    if x.is_floating_point():  # images: in the weights' precision (bf16/fp16 DeepSpeed runs)
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), x.dtype)
        x = x.to(dtype)
    if arch is None:  # a standalone child
        return model(x, return_hidden=return_hidden, **model_kwargs(batch))
    return model(x, arch=arch, return_hidden=return_hidden, **model_kwargs(batch))


def predict(model: nn.Module, arch: Any, batches: Iterable[dict[str, Any]],
            device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """All logits and labels of ``batches`` (call inside :func:`scoring_mode`)."""
    logits, labels = [], []
    for batch in batches:
        batch = to_device(batch, device)
        out = forward(model, arch, batch)
        logits.append(out.float().cpu())
        labels.append(batch["labels"].cpu())
    if logits and logits[0].dim() == 3:  # per-token outputs (MLM): flatten positions
        return (torch.cat([x.reshape(-1, x.shape[-1]) for x in logits]),
                torch.cat([y.reshape(-1) for y in labels]))
    return torch.cat(logits), torch.cat(labels)


def to_device(batch: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def mask_tokens(batch: dict[str, Any], vocab_size: int, mask_id: int, special_below: int,
                generator: torch.Generator, prob: float = 0.15) -> dict[str, Any]:
    """BERT masking: ``prob`` of real tokens become targets (80% [MASK], 10% random, 10% kept);
    other positions get label -100. Ids below ``special_below`` ([PAD], [CLS], ...) are never masked."""
    ids = batch["input"].clone()
    real = ids >= special_below
    if "attention_mask" in batch:
        real &= batch["attention_mask"].bool()
    targets = (torch.rand(ids.shape, generator=generator) < prob) & real
    labels = torch.where(targets, ids, torch.full_like(ids, -100))
    roll = torch.rand(ids.shape, generator=generator)
    ids[targets & (roll < 0.8)] = mask_id
    random_ids = torch.randint(special_below, vocab_size, ids.shape, generator=generator)
    swap = targets & (roll >= 0.8) & (roll < 0.9)
    ids[swap] = random_ids[swap]
    return {**batch, "input": ids, "labels": labels}
