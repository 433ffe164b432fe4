"""The task interface: data splits, head shape, loss and official metrics.

A task's datasets yield dicts of tensors. Every batch has ``input`` (token ids ``[B, T]`` or images
``[B, C, H, W]``) and ``labels``; text batches may add ``attention_mask`` and ``token_type_ids``.
Models are called as ``model(batch["input"], arch=arch, **model_kwargs(batch))``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch.utils.data import Dataset

MODEL_KWARGS = ("attention_mask", "token_type_ids")


def model_kwargs(batch: dict[str, Any]) -> dict[str, Any]:
    """The optional keyword inputs of a batch that the model takes."""
    return {k: batch[k] for k in MODEL_KWARGS if k in batch}


class Task:
    """Base class of tasks; register subclasses (or factories) with ``@register_task("name")``.

    Lifecycle: construct (cheap, validates options), then ``prepare(run_dir)`` loads the data (and
    trains or loads a tokenizer, cached in ``run_dir``), then ``dataset(split)``.
    """

    name: ClassVar[str] = ""
    modality: ClassVar[str] = "text"  # "text" or "image"
    problem: str = "classification"  # "classification", "regression" or "mlm"
    num_outputs: int = 2  # classes; 1 for regression; vocabulary size for mlm
    primary_metric: str = "accuracy"
    greater_is_better: bool = True
    splits: tuple[str, ...] = ("train", "dev", "test")

    def __init__(self, seed: int = 0, data_dir: str | Path | None = None, **options: Any):
        self.seed = seed
        self.data_dir = Path(data_dir) if data_dir else None
        self.options = options

    def prepare(self, run_dir: str | Path | None = None) -> "Task":
        """Load data (and tokenizer); idempotent. Returns self."""
        return self

    def space_overrides(self) -> dict[str, Any]:
        """Preset fields the space must take to fit this task (e.g. vocab_size, image_size)."""
        return {}

    def dataset(self, split: str) -> Dataset:
        raise NotImplementedError

    def collate(self, items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return torch.utils.data.default_collate(items)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.problem == "regression":
            return torch.nn.functional.mse_loss(logits.squeeze(-1), labels.float())
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100
        )

    def metrics(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        """Official metrics from all of a split's logits and labels (default: accuracy)."""
        if self.problem == "regression":
            raise NotImplementedError
        keep = labels != -100
        preds = logits.argmax(-1)
        return {"accuracy": float((preds[keep] == labels[keep]).float().mean())}

    def describe(self) -> dict[str, Any]:
        return {
            "task": self.name,
            "problem": self.problem,
            "num_outputs": self.num_outputs,
            "primary_metric": self.primary_metric,
        }
