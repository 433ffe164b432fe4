"""``digits``: scikit-learn's real handwritten digits, offline, as small RGB images.

The 1797 8x8 grey images of ``sklearn.datasets.load_digits`` (shipped with scikit-learn) are
upsampled (bilinear) to ``image_size`` pixels (default 32, the mobilenetv2 ``tiny`` input),
repeated over 3 channels and normalised with the training split's mean and std. A stratified split
by the task seed gives 1257 train / 270 dev / 270 test images. ``augment=true`` adds small random
shifts and rotations to training images (off by default so runs are cheap and deterministic).
``train_size=N`` keeps a stratified N of the training images (0: all).

``digits-small`` is the same with 200 training images: the low-data regime where architecture
decides accuracy. On the full set 10 random tiny mobilenetv2 children trained 300 steps all reach
0.90-0.96 dev accuracy; with 200 images 30 children spread 0.56-0.77, which is what ranking
experiments need (docs/reproduction.md, with the commands that measure both).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .._errors import NasUsageError
from . import register_task
from ._base import Task, TensorDictDataset

DEV_SIZE = TEST_SIZE = 270
MAX_TRAIN = 1797 - DEV_SIZE - TEST_SIZE  # 1257


class _Augmented(Dataset):
    """Training images with a random affine jitter per access (torchvision transforms)."""

    def __init__(self, base: TensorDictDataset, transform):
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.base[index]
        return {**item, "input": self.transform(item["input"])}


@register_task("digits")
class Digits(Task):
    """Real 8x8 handwritten digits (scikit-learn), upsampled to RGB images; 10 classes, offline."""

    modality = "image"
    problem = "classification"
    num_outputs = 10
    primary_metric = "accuracy"
    option_defaults = {"image_size": 32, "augment": False, "train_size": 0}

    def __init__(self, seed: int = 0, data_dir: Any = None, **options: Any):
        super().__init__(seed, data_dir, **options)
        if not 8 <= self.options["image_size"] <= 512:
            raise NasUsageError(f"digits needs 8 <= image_size <= 512, got {self.options['image_size']}")
        if not 0 <= self.options["train_size"] <= MAX_TRAIN:
            raise NasUsageError(f"digits has {MAX_TRAIN} training images; train_size must be 0 (all) "
                                f"to {MAX_TRAIN}, got {self.options['train_size']}")
        self._data: dict[str, Dataset] = {}

    def _prepare(self, run_dir) -> None:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        images = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[:, None]
        size = self.options["image_size"]
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
        images = images.expand(-1, 3, -1, -1).contiguous()
        labels = torch.from_numpy(digits.target.astype(np.int64))
        index = np.arange(len(labels))
        rest, test = train_test_split(index, test_size=TEST_SIZE, random_state=self.seed,
                                      stratify=digits.target)
        train, dev = train_test_split(rest, test_size=DEV_SIZE, random_state=self.seed,
                                      stratify=digits.target[rest])
        if 0 < self.options["train_size"] < len(train):
            train, _ = train_test_split(train, train_size=self.options["train_size"],
                                        random_state=self.seed, stratify=digits.target[train])
        mean, std = images[train].mean(), images[train].std()
        images = (images - mean) / std
        for split, rows in (("train", train), ("dev", dev), ("test", test)):
            rows = torch.from_numpy(np.sort(rows))
            self._data[split] = TensorDictDataset(input=images[rows], labels=labels[rows])
        if self.options["augment"]:
            from torchvision.transforms import v2

            jitter = v2.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1),
                                     fill=float(-mean / std))
            self._data["train"] = _Augmented(self._data["train"], jitter)

    def _dataset(self, split: str) -> Dataset:
        return self._data[split]

    def space_overrides(self) -> dict[str, Any]:
        return {"num_classes": self.num_outputs, "image_size": self.options["image_size"]}

    def describe(self) -> dict[str, Any]:
        sizes = {s: len(d) for s, d in self._data.items()}  # known once prepared
        return {**super().describe(), "source": "sklearn.datasets.load_digits", **({"sizes": sizes} if sizes else {})}


@register_task("digits-small")
class DigitsSmall(Digits):
    """Handwritten digits with 200 training images: architectures differ by tens of points."""

    option_defaults = {**Digits.option_defaults, "train_size": 200}
