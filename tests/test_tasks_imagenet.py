"""imagenet: ImageFolder trees and Hugging Face image datasets, as dict batches with augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nas import NasUsageError
from nas.tasks import get_task

CLASSES = ("cat", "dog", "eel")


def image_tree(root, splits=(("train", 4), ("val", 2)), classes=CLASSES):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in splits:
        for c in classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 255, (20, 28, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / c / f"{i}.jpg")
    return root


def test_image_folder_splits_batches_and_overrides(tmp_path):
    task = get_task("imagenet", data_dir=image_tree(tmp_path), image_size=16, num_workers="0").prepare()
    assert task.space_overrides() == {"num_classes": 3, "image_size": 16}
    d = task.describe()
    assert d["sizes"] == {"train": 12, "dev": 6, "test": 6} and d["classes"] == list(CLASSES)
    assert d["sources"]["test"] == d["sources"]["dev"] == str(tmp_path / "val")
    assert task.num_workers == 0
    loader = torch.utils.data.DataLoader(task.dataset("train"), batch_size=5, collate_fn=task.collate,
                                         num_workers=task.num_workers)
    batch = next(iter(loader))
    assert batch["input"].shape == (5, 3, 16, 16) and batch["input"].dtype == torch.float32
    assert batch["labels"].tolist() == [0, 0, 0, 0, 1]
    train, dev = task.dataset("train"), task.dataset("dev")
    assert not torch.equal(train[0]["input"], train[0]["input"])  # random crop / flip
    assert torch.equal(dev[0]["input"], dev[0]["input"])  # resize + centre crop


def test_val_uses_train_class_indices_and_test_folder(tmp_path):
    image_tree(tmp_path, splits=(("train", 2),))
    image_tree(tmp_path, splits=(("val", 1), ("test", 2)), classes=("dog", "eel"))  # no 'cat'
    task = get_task("imagenet", data_dir=tmp_path, image_size=8).prepare()
    assert sorted({int(x["labels"]) for x in task.dataset("dev")}) == [1, 2]  # not re-numbered 0, 1
    assert len(task.dataset("test")) == 4 and task.describe()["sources"]["test"] == str(tmp_path / "test")
    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]])
    assert task.metrics(logits, torch.tensor([1, 2])) == {"accuracy": 0.5}
    image_tree(tmp_path, splits=(("val", 1),), classes=("fox",))
    with pytest.raises(NasUsageError, match="class folder\\(s\\) fox that train/ lacks"):
        get_task("imagenet", data_dir=tmp_path, image_size=8).prepare()


def test_layout_errors(tmp_path):
    with pytest.raises(NasUsageError, match="needs exactly one source: --data-dir DIR"):
        get_task("imagenet")
    with pytest.raises(NasUsageError, match=r"missing .*/train; imagenet --data-dir needs an ImageFolder tree"):
        get_task("imagenet", data_dir=tmp_path).prepare()
    image_tree(tmp_path, splits=(("train", 1),))
    with pytest.raises(NasUsageError, match=r"missing .*/val \(the dev split\)"):
        get_task("imagenet", data_dir=tmp_path).prepare()


def test_hugging_face_image_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)) for _ in range(8)]
    features = datasets.Features({"img": datasets.Image(),
                                  "label": datasets.ClassLabel(names=[f"c{i}" for i in range(7)])})
    part = lambda rows: datasets.Dataset.from_dict(  # noqa: E731
        {"img": [images[i] for i in rows], "label": [i % 7 for i in rows]}, features=features)
    datasets.DatasetDict(train=part(range(6)), validation=part([6, 7])).save_to_disk(tmp_path / "hf")
    task = get_task("imagenet", hf_dataset=str(tmp_path / "hf"), image_size=8).prepare()
    assert task.num_outputs == 7 and task.describe()["sizes"] == {"train": 6, "dev": 2, "test": 2}
    item = task.dataset("dev")[1]
    assert item["input"].shape == (3, 8, 8) and int(item["labels"]) == 0
    logits = torch.eye(7)[[0, 3]]
    assert set(task.metrics(logits, torch.tensor([0, 1]))) == {"accuracy", "top5_accuracy"}
    with pytest.raises(NasUsageError, match="could not load image dataset"):
        get_task("imagenet", hf_dataset=str(tmp_path / "missing")).prepare()
