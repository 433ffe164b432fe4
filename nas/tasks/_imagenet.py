"""``imagenet``: image classification from an ImageFolder tree or a Hugging Face image dataset.

``--data-dir DIR`` holds a torchvision ``ImageFolder`` tree: ``DIR/train/CLASS/*.jpg`` and
``DIR/val/CLASS/*.jpg`` (``validation/`` or ``dev/`` also accepted); ``dev`` is ``val`` and ``test``
is ``DIR/test/CLASS/...`` when present, else ``val`` again (ImageNet's test labels are not public).
Class indices come from the train folders, also for ``val``/``test``. Alternatively the option
``hf_dataset=NAME_OR_PATH`` loads a ``datasets`` image dataset (``image``/``img`` and
``label``/``labels`` columns; splits ``train``, ``validation``, optional labelled ``test``).

Standard augmentation: RandomResizedCrop + horizontal flip for training, Resize(size/0.875) +
CenterCrop for evaluation, ImageNet mean/std. ``image_size`` (default 224) shrinks runs; the task's
``num_workers`` attribute (option, ``-1`` = up to 8 by CPU count) is meant for DataLoaders.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from .._errors import NasUsageError
from . import _metrics, register_task
from ._base import Task
from ._tokenizer import first_line

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
DEV_FOLDERS = ("val", "validation", "dev")


def transforms(image_size: int, train: bool):
    from torchvision.transforms import v2

    head = ([v2.RandomResizedCrop(image_size, antialias=True), v2.RandomHorizontalFlip()] if train else
            [v2.Resize(round(image_size / 0.875), antialias=True), v2.CenterCrop(image_size)])
    return v2.Compose([v2.ToImage(), *head, v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])


class DictImages(Dataset):
    """(image, label) pairs from a base dataset as ``{"input", "labels"}`` dicts, transformed."""

    def __init__(self, base, transform, image_key=None, label_key=None):
        self.base, self.transform = base, transform
        self.image_key, self.label_key = image_key, label_key  # set for Hugging Face rows

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        try:
            if self.image_key is None:
                image, label = self.base[index]
            else:
                row = self.base[index]
                image, label = row[self.image_key], row[self.label_key]
            if hasattr(image, "convert"):
                image = image.convert("RGB")
            return {"input": self.transform(image), "labels": torch.tensor(int(label))}
        except (OSError, SyntaxError, ValueError) as exc:  # PIL: unreadable, truncated, corrupt
            # A bad image stops training with one line naming it (no silent skipping: the data a
            # run saw stays a pure function of seed and step); fix or delete it, then --resume.
            samples = getattr(self.base, "samples", None)
            where = samples[index][0] if samples else f"image {index}"
            raise NasUsageError(
                f"cannot read {where} ({first_line(exc)}); replace or delete it and rerun with --resume"
            ) from None


def image_folder(root: Path, class_to_idx: dict[str, int] | None = None):
    """A torchvision ImageFolder; with ``class_to_idx``, the train split's classes are imposed."""
    from torchvision.datasets import ImageFolder

    class Folder(ImageFolder):
        def find_classes(self, directory):
            if class_to_idx is None:
                return super().find_classes(directory)
            found = sorted(e.name for e in os.scandir(directory) if e.is_dir())
            unknown = [c for c in found if c not in class_to_idx]
            if unknown:
                raise NasUsageError(f"{directory} has class folder(s) {', '.join(unknown[:5])} that "
                                    "train/ lacks; every class needs training images")
            return sorted(class_to_idx, key=class_to_idx.get), class_to_idx

    try:
        return Folder(str(root), allow_empty=class_to_idx is not None)
    except FileNotFoundError as exc:
        raise NasUsageError(f"{root}: {first_line(exc)}; expected {root}/CLASS/IMAGE.jpg") from None


@register_task("imagenet")
class ImageNet(Task):
    """ImageNet-style classification from an ImageFolder tree (--data-dir) or a HF image dataset."""

    modality = "image"
    problem = "classification"
    primary_metric = "accuracy"
    uses_data_dir = True
    option_defaults = {"image_size": 224, "num_workers": -1, "hf_dataset": None}

    def __init__(self, seed: int = 0, data_dir: Any = None, **options: Any):
        super().__init__(seed, data_dir, **options)
        o = self.options
        if not 8 <= o["image_size"] <= 1024:
            raise NasUsageError(f"imagenet needs 8 <= image_size <= 1024, got {o['image_size']}")
        if (self.data_dir is None) == (not o["hf_dataset"]):
            raise NasUsageError(
                "imagenet needs exactly one source: --data-dir DIR (ImageFolder: DIR/train/CLASS/*.jpg "
                "and DIR/val/CLASS/*.jpg) or the task option hf_dataset=NAME_OR_PATH"
            )
        workers = int(o["num_workers"])
        self.num_workers = min(8, os.cpu_count() or 1) if workers < 0 else workers
        self.num_outputs = 0  # known once prepared
        self.classes: list[str] = []
        self.sources: dict[str, str] = {}
        self._data: dict[str, DictImages] = {}

    def _prepare(self, run_dir) -> None:
        size = self.options["image_size"]
        bases = self._hub_splits() if self.options["hf_dataset"] else self._folder_splits()
        for split, (base, keys) in bases.items():
            self._data[split] = DictImages(base, transforms(size, split == "train"), *keys)

    def _folder_splits(self) -> dict[str, tuple]:
        root = self.data_dir
        if not (root / "train").is_dir():
            raise NasUsageError(f"missing {root / 'train'}; imagenet --data-dir needs an ImageFolder "
                                "tree: train/CLASS/*.jpg and val/CLASS/*.jpg (optional test/CLASS/...)")
        dev = next((root / d for d in DEV_FOLDERS if (root / d).is_dir()), None)
        if dev is None:
            raise NasUsageError(f"missing {root / 'val'} (the dev split); expected val/CLASS/*.jpg "
                                "beside train/")
        train = image_folder(root / "train")
        self.classes, self.num_outputs = list(train.classes), len(train.classes)
        test_dir = root / "test" if (root / "test").is_dir() else dev
        splits = {"train": train, "dev": image_folder(dev, train.class_to_idx),
                  "test": image_folder(test_dir, train.class_to_idx)}
        self.sources = {s: d.root for s, d in splits.items()}
        return {s: (d, ()) for s, d in splits.items()}

    def _hub_splits(self) -> dict[str, tuple]:
        name = self.options["hf_dataset"]
        try:
            import datasets

            if Path(name).is_dir() and (Path(name) / "dataset_dict.json").is_file():
                data = datasets.load_from_disk(name)
            else:
                data = datasets.load_dataset(name)
        except Exception as exc:
            raise NasUsageError(f"could not load image dataset '{name}' ({type(exc).__name__}: "
                                f"{first_line(exc)}); pass a local dataset path or use --data-dir "
                                "with an ImageFolder tree") from None
        dev = next((s for s in ("validation", "val", "valid", "dev") if s in data), None)
        if "train" not in data or dev is None:
            raise NasUsageError(f"image dataset '{name}' has splits {', '.join(data)}; it needs "
                                "'train' and 'validation'")
        train = data["train"]
        image_key = next((c for c in ("image", "img") if c in train.column_names), None)
        label_key = next((c for c in ("label", "labels") if c in train.column_names), None)
        if image_key is None or label_key is None:
            raise NasUsageError(f"image dataset '{name}' has columns {', '.join(train.column_names)}; "
                                "it needs an 'image' (or 'img') and a 'label' (or 'labels') column")
        feature = train.features[label_key]
        self.classes = list(getattr(feature, "names", None) or [])
        self.num_outputs = len(self.classes) or int(max(train[label_key])) + 1
        test = "test" if "test" in data and min(data["test"][label_key]) >= 0 else dev
        splits = {"train": "train", "dev": dev, "test": test}
        self.sources = {s: f"{name}:{hub}" for s, hub in splits.items()}
        return {s: (data[hub], (image_key, label_key)) for s, hub in splits.items()}

    def _dataset(self, split: str) -> DictImages:
        return self._data[split]

    def space_overrides(self) -> dict[str, Any]:
        self.prepare()
        return {"num_classes": self.num_outputs, "image_size": self.options["image_size"]}

    def metrics(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        names = ("accuracy", "top5_accuracy") if logits.shape[-1] > 5 else ("accuracy",)
        return _metrics.classification(logits, labels, names)

    def describe(self) -> dict[str, Any]:
        out = {**super().describe(), "num_workers": self.num_workers}
        if self._data:
            out.update(sizes={s: len(d) for s, d in self._data.items()}, sources=dict(self.sources),
                       classes=self.classes[:20])
        return out
