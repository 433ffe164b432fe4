"""The task interface: data splits, head shape, loss and official metrics.

A task's datasets yield dicts of tensors. Every batch has ``input`` (token ids ``[B, T]`` or images
``[B, C, H, W]``) and ``labels``; text batches may add ``attention_mask`` and ``token_type_ids``.
Models are called as ``model(batch["input"], arch=arch, **model_kwargs(batch))``.

Typical use by a trainer::

    task = get_task("glue:rte", seed=0, data_dir="glue/").prepare(run_dir)
    space = get_space("bert", preset="tiny", **task.space_overrides())
    net = space.build_supernet(num_outputs=task.num_outputs)
    loader = DataLoader(task.dataset("train"), batch_size=32, shuffle=True,
                        collate_fn=task.collate, num_workers=task.num_workers)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch.utils.data import Dataset

from .._errors import NasUsageError
from .._words import parse_bool

MODEL_KWARGS = ("attention_mask", "token_type_ids")


def model_kwargs(batch: dict[str, Any]) -> dict[str, Any]:
    """The optional keyword inputs of a batch that the model takes."""
    return {k: batch[k] for k in MODEL_KWARGS if k in batch}


class Task:
    """Base class of tasks; register subclasses (or factories) with ``@register_task("name")``.

    Lifecycle: construct (cheap, validates options), then ``prepare(run_dir)`` loads the data (and
    trains or loads a tokenizer, cached in ``run_dir``), then ``dataset(split)``.

    Subclasses declare their options with defaults in ``option_defaults`` (values given as strings,
    e.g. from a command line, are converted to the default's type) and implement ``_prepare`` and
    ``_dataset``; ``dataset``/``space_overrides`` prepare the task on first use if needed.
    """

    name: ClassVar[str] = ""
    modality: ClassVar[str] = "text"  # "text" or "image"
    problem: str = "classification"  # "classification", "regression" or "mlm"
    num_outputs: int = 2  # classes; 1 for regression; vocabulary size for mlm
    primary_metric: str = "accuracy"
    num_special_tokens: int = 1  # text: token ids below this ([PAD], [CLS], ...) are never masked for MLM
    greater_is_better: bool = True
    splits: tuple[str, ...] = ("train", "dev", "test")
    option_defaults: ClassVar[dict[str, Any]] = {}
    uses_data_dir: ClassVar[bool] = False  # embedded tasks refuse a data_dir rather than ignore it
    num_workers: int = 0  # DataLoader workers the task's datasets are worth

    def __init__(self, seed: int = 0, data_dir: str | Path | None = None, **options: Any):
        if data_dir and not self.uses_data_dir:
            raise NasUsageError(
                f"task '{self.name}' is generated in memory and takes no data directory; "
                "drop --data-dir (it is for glue:* and imagenet)"
            )
        self.seed = int(seed)
        self.data_dir = Path(data_dir).expanduser() if data_dir else None
        self.options = resolve_options(self.name, self.option_defaults, options)
        self._prepared = False

    # ---- lifecycle ----------------------------------------------------------------------------
    def prepare(self, run_dir: str | Path | None = None) -> "Task":
        """Load data (and tokenizer); idempotent. Returns self."""
        if not self._prepared:
            self._prepare(Path(run_dir) if run_dir is not None else None)
            self._prepared = True
        return self

    def _prepare(self, run_dir: Path | None) -> None:
        pass

    def space_overrides(self) -> dict[str, Any]:
        """Preset fields the space must take to fit this task (e.g. vocab_size, image_size)."""
        return {}

    def dataset(self, split: str) -> Dataset:
        self.check_split(split)
        self.prepare()
        return self._dataset(split)

    def _dataset(self, split: str) -> Dataset:
        raise NotImplementedError

    def check_split(self, split: str) -> None:
        if split not in self.splits:
            raise NasUsageError(
                f"task '{self.name}' has no split '{split}'; choose from: {', '.join(self.splits)}"
            )

    # ---- training and evaluation --------------------------------------------------------------
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
            "modality": self.modality,
            "problem": self.problem,
            "num_outputs": self.num_outputs,
            "primary_metric": self.primary_metric,
            "greater_is_better": self.greater_is_better,
            "splits": list(self.splits),
            "seed": self.seed,
            "options": dict(self.options),
        }


class TensorDictDataset(Dataset):
    """Rows of equally long tensors, served as dicts (``input``, ``labels``, ...)."""

    def __init__(self, **tensors: torch.Tensor):
        lengths = {len(t) for t in tensors.values()}
        if len(lengths) != 1:
            raise ValueError(f"tensors differ in length: { {k: len(t) for k, t in tensors.items()} }")
        self.tensors = tensors
        self._length = lengths.pop()

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: t[index] for k, t in self.tensors.items()}


def resolve_options(task: str, defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with ``given``; unknown names and unconvertible values are usage errors."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        valid = ", ".join(f"{k} (default {defaults[k]!r})" for k in sorted(defaults)) or "(none)"
        raise NasUsageError(
            f"unknown option(s) {', '.join(unknown)} for task '{task}'; valid options: {valid}"
        )
    options = dict(defaults)
    for key, value in given.items():
        options[key] = _coerce(task, key, value, defaults[key])
    return options


def _coerce(task: str, key: str, value: Any, default: Any) -> Any:
    if value is None or default is None or not isinstance(value, str):
        if isinstance(default, bool) and not isinstance(value, bool) and value is not None:
            raise NasUsageError(f"task '{task}' option {key}={value!r} must be true or false")
        return value
    if isinstance(default, bool):
        flag = parse_bool(value) if value == value.strip() else None
        if flag is not None:
            return flag
        raise NasUsageError(f"task '{task}' option {key}={value!r} must be true or false")
    for kind, label in ((int, "an integer"), (float, "a number")):
        if isinstance(default, kind):
            try:
                return kind(value)
            except ValueError:
                raise NasUsageError(f"task '{task}' option {key}={value!r} must be {label}") from None
    return value
