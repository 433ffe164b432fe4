"""``cifar10``: the official CIFAR-10 distributions, read from ``--data-dir`` with no pickle.

``--data-dir`` is a folder holding ``cifar-10-batches-bin/`` (the binary version: records of one
label byte and 3,072 pixel bytes, red then green then blue planes, row-major 32x32) or
``cifar-10-batches-py/`` (the python version: pickled dicts of a ``uint8`` array and a label list),
or one of those folders itself. The python batches are read with a restricted unpickler that only
rebuilds numpy arrays; anything else in the file is refused, so a planted payload cannot run.

Splits: ``train`` = the training batches (``data_batch_1`` .. ``data_batch_5``) less a ``dev`` split
of ``dev_size`` images (default 500, at most a tenth of them) carved from them by the task seed (stratified), ``test`` = ``test_batch``.
Training images get the standard augmentation (4-pixel zero pad + random 32x32 crop, horizontal
flip); every split is normalised per channel with CIFAR-10's training-set mean and std.
``train_size=N`` keeps N training images (0: all), ``test_size=N`` the first N test images.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .._errors import NasUsageError
from . import register_task
from ._base import Task

MEAN = (0.4914, 0.4822, 0.4465)  # CIFAR-10 training set, per channel
STD = (0.2470, 0.2435, 0.2616)
RECORD = 1 + 3 * 32 * 32
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
LAYOUTS = ("cifar-10-batches-bin", "cifar-10-batches-py")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays (and plain containers); refuses every other global."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),  # how Python 3 writes byte strings in protocol-2 pickles
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed")


def _read_python_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            data = _NumpyOnlyUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise NasUsageError(f"{path} is not a CIFAR-10 python batch ({exc}); give the official "
                            "cifar-10-batches-py files (only numpy arrays are unpickled)") from None
    if not isinstance(data, dict):
        raise NasUsageError(f"{path} holds a {type(data).__name__}, not a CIFAR-10 batch dict")
    data = {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}
    if "data" not in data or "labels" not in data:
        raise NasUsageError(f"{path} lacks 'data' or 'labels'; give the official cifar-10-batches-py files")
    pixels = np.asarray(data["data"])
    labels = np.asarray(data["labels"], dtype=np.int64)
    if pixels.dtype != np.uint8 or pixels.ndim != 2 or pixels.shape[1] != RECORD - 1:
        raise NasUsageError(f"{path}: 'data' is {pixels.dtype} {pixels.shape}, expected uint8 (N, 3072)")
    if len(labels) != len(pixels):
        raise NasUsageError(f"{path}: {len(pixels)} images but {len(labels)} labels")
    return pixels.reshape(-1, 3, 32, 32), labels


def _read_binary_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD:
        raise NasUsageError(
            f"{path} has {raw.size:,} bytes, not a whole number of {RECORD:,}-byte records "
            f"(truncated after record {raw.size // RECORD:,}?); copy the file again")
    records = raw.reshape(-1, RECORD)
    return records[:, 1:].reshape(-1, 3, 32, 32), records[:, 0].astype(np.int64)


def find_layout(data_dir: Path) -> tuple[Path, str]:
    """The batches folder under ``data_dir`` and its layout (``bin`` or ``py``)."""
    for candidate in (data_dir, *(data_dir / name for name in LAYOUTS)):
        if (candidate / f"{TEST_BATCH}.bin").is_file():
            return candidate, "bin"
        if (candidate / TEST_BATCH).is_file():
            return candidate, "py"
    if not data_dir.is_dir():
        raise NasUsageError(f"CIFAR-10 folder not found: {data_dir}; pass --data-dir with "
                            "cifar-10-batches-bin/ or cifar-10-batches-py/ inside")
    raise NasUsageError(
        f"{data_dir} holds neither cifar-10-batches-bin/ (data_batch_1.bin ... test_batch.bin) nor "
        "cifar-10-batches-py/ (data_batch_1 ... test_batch); download the binary or python "
        "version from https://www.cs.toronto.edu/~kriz/cifar.html and extract it there")


def read_split(folder: Path, layout: str, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, 3, 32, 32]`` uint8 and labels of the named batches that exist (all for test)."""
    images, labels = [], []
    for name in names:
        path = folder / (f"{name}.bin" if layout == "bin" else name)
        if not path.is_file():
            continue
        x, y = (_read_binary_batch if layout == "bin" else _read_python_batch)(path)
        bad = np.flatnonzero((y < 0) | (y > 9))
        if bad.size:
            raise NasUsageError(f"{path}: record {int(bad[0]):,} has label {int(y[bad[0]])}, outside "
                                "0..9; the file is not CIFAR-10 (CIFAR-100 has its own layout)")
        images.append(x)
        labels.append(y)
    if not images:
        raise NasUsageError(f"{folder} has none of {', '.join(names)}; give the complete "
                            f"{'cifar-10-batches-bin' if layout == 'bin' else 'cifar-10-batches-py'} folder")
    return np.concatenate(images), np.concatenate(labels)


class CifarImages(Dataset):
    """uint8 images as normalised float tensors; with ``augment``, pad-4 random crop + flip."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, augment: bool):
        self.images, self.labels, self.augment = images, labels, augment
        self.mean = torch.tensor(MEAN).view(3, 1, 1)
        self.std = torch.tensor(STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        x = self.images[index].float().div_(255)
        if self.augment:  # the global torch RNG: seeded per run, restored by checkpoints
            dy, dx, flip = torch.randint(0, 9, (2,)).tolist() + [bool(torch.rand(()) < 0.5)]
            x = torch.nn.functional.pad(x, (4, 4, 4, 4))[:, dy:dy + 32, dx:dx + 32]
            if flip:
                x = x.flip(-1)
        return {"input": (x - self.mean) / self.std, "labels": self.labels[index]}


@register_task("cifar10")
class Cifar10(Task):
    """CIFAR-10 (10 classes, 32x32) from the official binary or python distribution."""

    modality = "image"
    problem = "classification"
    num_outputs = 10
    primary_metric = "accuracy"
    uses_data_dir = True
    option_defaults = {"dev_size": 500, "train_size": 0, "test_size": 0, "augment": True}

    def __init__(self, seed: int = 0, data_dir: Any = None, **options: Any):
        super().__init__(seed, data_dir, **options)
        for key, low in (("dev_size", 1), ("train_size", 0), ("test_size", 0)):
            if self.options[key] < low:
                raise NasUsageError(f"cifar10 option {key}={self.options[key]} must be >= {low}")
        if self.data_dir is None:
            raise NasUsageError("task 'cifar10' reads the official CIFAR-10 files: pass --data-dir "
                                "DIR with cifar-10-batches-bin/ or cifar-10-batches-py/ inside")
        self._data: dict[str, Dataset] = {}
        self.layout: str | None = None

    def _prepare(self, run_dir) -> None:
        folder, self.layout = find_layout(self.data_dir)
        x, y = read_split(folder, self.layout, TRAIN_BATCHES)
        test_x, test_y = read_split(folder, self.layout, (TEST_BATCH,))
        dev_size = max(1, min(self.options["dev_size"], len(y) // 10))
        rng = np.random.default_rng(self.seed)
        dev = np.sort(np.concatenate([  # stratified: the same share of every class
            rng.permutation(np.flatnonzero(y == c))[:round(dev_size * np.mean(y == c))]
            for c in range(10)]))[:dev_size]
        train = np.setdiff1d(np.arange(len(y)), dev)
        if 0 < self.options["train_size"] < len(train):
            train = np.sort(rng.permutation(train)[:self.options["train_size"]])
        if self.options["test_size"]:
            test_x, test_y = test_x[:self.options["test_size"]], test_y[:self.options["test_size"]]
        tensors = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
        self._data = {
            "train": CifarImages(tensors(x[train]), tensors(y[train]), self.options["augment"]),
            "dev": CifarImages(tensors(x[dev]), tensors(y[dev]), False),
            "test": CifarImages(tensors(test_x), tensors(test_y), False),
        }

    def _dataset(self, split: str) -> Dataset:
        return self._data[split]

    def space_overrides(self) -> dict[str, Any]:
        return {"num_classes": 10, "image_size": 32}

    def describe(self) -> dict[str, Any]:
        extra = {"layout": self.layout, "sizes": {s: len(d) for s, d in self._data.items()}} if self._data else {}
        return {**super().describe(), "data_dir": str(self.data_dir), **extra}
