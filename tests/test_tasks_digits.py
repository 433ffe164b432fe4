"""digits: scikit-learn's handwritten digits as normalised RGB images with a seeded split."""

from __future__ import annotations

import pytest
import torch

from nas import NasUsageError
from nas.tasks import get_task


@pytest.fixture(scope="module")
def task():
    return get_task("digits").prepare()


def _all(ds):
    return ds.tensors["input"], ds.tensors["labels"]


def test_sizes_shapes_and_overrides(task):
    assert [len(task.dataset(s)) for s in task.splits] == [1257, 270, 270]
    item = task.dataset("dev")[0]
    assert item["input"].shape == (3, 32, 32) and item["input"].dtype == torch.float32
    assert torch.equal(item["input"][0], item["input"][2])  # grey repeated over channels
    assert task.space_overrides() == {"num_classes": 10, "image_size": 32}
    assert task.describe()["sizes"] == {"train": 1257, "dev": 270, "test": 270}


def test_split_is_stratified_disjoint_and_normalised(task):
    x_train, y_train = _all(task.dataset("train"))
    x_dev, y_dev = _all(task.dataset("dev"))
    assert set(y_dev.tolist()) == set(range(10)) and torch.bincount(y_dev).min() >= 26
    assert abs(float(x_train.mean())) < 1e-4 and abs(float(x_train.std()) - 1) < 1e-3
    train_rows = {tuple(r.tolist()) for r in x_train[:, 0, ::4, ::4].flatten(1)}
    dev_rows = [tuple(r.tolist()) for r in x_dev[:, 0, ::4, ::4].flatten(1)]
    assert sum(r in train_rows for r in dev_rows) < 5  # (a few digits are duplicated in the source)


def test_seed_changes_the_split_only(task):
    same = get_task("digits").prepare()
    other = get_task("digits", seed=1).prepare()
    assert torch.equal(_all(same.dataset("test"))[0], _all(task.dataset("test"))[0])
    assert not torch.equal(_all(other.dataset("test"))[1], _all(task.dataset("test"))[1])


def test_image_size_and_augmentation():
    task = get_task("digits", image_size=16, augment=True).prepare()
    assert task.space_overrides()["image_size"] == 16
    train, dev = task.dataset("train"), task.dataset("dev")
    first, second = train[5]["input"], train[5]["input"]
    assert first.shape == (3, 16, 16) and not torch.equal(first, second)  # random jitter each time
    assert torch.equal(dev[5]["input"], dev[5]["input"])  # evaluation is not augmented
    with pytest.raises(NasUsageError, match="digits needs 8 <= image_size <= 512"):
        get_task("digits", image_size=4)


def test_labels_match_images(task):
    """The data are real and labels aligned: nearest class mean already beats chance by far."""
    x, y = _all(task.dataset("train"))
    means = torch.stack([x[y == c].flatten(1).mean(0) for c in range(10)])
    xd, yd = _all(task.dataset("dev"))
    logits = -torch.cdist(xd.flatten(1), means)
    assert task.metrics(logits, yd)["accuracy"] > 0.8


def test_digits_small_keeps_a_stratified_subset_and_the_same_held_out_splits(task):
    small = get_task("digits-small").prepare()
    x_small, y_small = _all(small.dataset("train"))
    assert len(y_small) == 200 and torch.bincount(y_small).min() >= 18
    for split in ("dev", "test"):  # same held-out images (normalised with the smaller train set's stats)
        assert torch.equal(_all(small.dataset(split))[1], _all(task.dataset(split))[1])
    assert len(get_task("digits", train_size="300").prepare().dataset("train")) == 300
    with pytest.raises(NasUsageError, match="train_size must be 0"):
        get_task("digits", train_size=5000)
