"""The cifar10 task: both official layouts from tiny fixtures, augmentation, and bad files."""

import pickle

import numpy as np
import pytest
import torch

from nas import NasUsageError, get_task


def make_cifar(root, layout="bin", per_batch=24, test=30, seed=0):
    """A tiny CIFAR-10 distribution in the official layout (labels cycle over 0..9)."""
    rng = np.random.default_rng(seed)
    folder = root / ("cifar-10-batches-bin" if layout == "bin" else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    for name, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", test)]:
        pixels = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = np.arange(n) % 10
        if layout == "bin":
            records = np.concatenate([labels[:, None].astype(np.uint8), pixels], axis=1)
            (folder / f"{name}.bin").write_bytes(records.tobytes())
        else:
            with open(folder / name, "wb") as f:
                pickle.dump({b"batch_label": name.encode(), b"labels": labels.tolist(),
                             b"data": pixels, b"filenames": [b"x.png"] * n}, f, protocol=2)
    return root


@pytest.mark.parametrize("layout", ["bin", "py"])
def test_both_layouts_give_the_same_images(tmp_path, layout):
    task = get_task("cifar10", data_dir=make_cifar(tmp_path, layout, per_batch=40), dev_size=20).prepare()
    assert task.layout == layout
    train, dev, test = (task.dataset(s) for s in ("train", "dev", "test"))
    assert (len(train), len(dev), len(test)) == (5 * 40 - 20, 20, 30)
    assert sorted(dev.labels.tolist()) == sorted(list(range(10)) * 2)  # stratified by class
    item = test[3]
    assert item["input"].shape == (3, 32, 32) and item["labels"] == 3
    # Test images are the file's pixels, normalised per channel with CIFAR-10's mean and std.
    raw = np.random.default_rng(0)
    for _ in range(5):
        raw.integers(0, 256, (40, 3072), dtype=np.uint8)
    pixels = torch.from_numpy(raw.integers(0, 256, (30, 3072), dtype=np.uint8)[3].reshape(3, 32, 32))
    expected = (pixels.float() / 255 - torch.tensor([0.4914, 0.4822, 0.4465]).view(3, 1, 1)) / \
        torch.tensor([0.2470, 0.2435, 0.2616]).view(3, 1, 1)
    assert torch.allclose(item["input"], expected, atol=1e-5)


def test_layout_folder_itself_and_same_records(tmp_path):
    bin_task = get_task("cifar10", data_dir=make_cifar(tmp_path / "a", "bin") / "cifar-10-batches-bin").prepare()
    py_task = get_task("cifar10", data_dir=make_cifar(tmp_path / "b", "py")).prepare()
    assert torch.equal(bin_task.dataset("test").images, py_task.dataset("test").images)
    assert torch.equal(bin_task.dataset("train").labels, py_task.dataset("train").labels)


def test_training_augmentation_pads_crops_and_flips(tmp_path):
    task = get_task("cifar10", data_dir=make_cifar(tmp_path), dev_size=10).prepare()
    train = task.dataset("train")
    torch.manual_seed(0)
    views = torch.stack([train[0]["input"] for _ in range(20)])
    assert len({tuple(v.flatten()[:50].tolist()) for v in views}) > 1  # random crops / flips
    # Zero padding shows up as constant borders (the normalised value of black).
    black = (-torch.tensor([0.4914, 0.4822, 0.4465]) / torch.tensor([0.2470, 0.2435, 0.2616]))
    assert any(torch.allclose(v[:, 0, :], black.view(3, 1).expand(3, 32)) or
               torch.allclose(v[:, :, 0], black.view(3, 1).expand(3, 32)) for v in views)
    plain = get_task("cifar10", data_dir=tmp_path, dev_size=10, augment="false").prepare()
    assert torch.equal(plain.dataset("train")[0]["input"], plain.dataset("train")[0]["input"])


def test_bad_folders_and_files(tmp_path):
    with pytest.raises(NasUsageError, match="pass --data-dir"):
        get_task("cifar10")
    with pytest.raises(NasUsageError, match="CIFAR-10 folder not found"):
        get_task("cifar10", data_dir=tmp_path / "nope").prepare()
    (tmp_path / "empty").mkdir()
    with pytest.raises(NasUsageError, match="holds neither cifar-10-batches-bin/ .* nor"):
        get_task("cifar10", data_dir=tmp_path / "empty").prepare()

    root = make_cifar(tmp_path / "trunc")
    path = root / "cifar-10-batches-bin" / "data_batch_2.bin"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(NasUsageError, match=r"data_batch_2.bin has .* not a whole number .*truncated"):
        get_task("cifar10", data_dir=root).prepare()

    root = make_cifar(tmp_path / "label")
    path = root / "cifar-10-batches-bin" / "test_batch.bin"
    raw = bytearray(path.read_bytes())
    raw[3073 * 2] = 12
    path.write_bytes(bytes(raw))
    with pytest.raises(NasUsageError, match="record 2 has label 12, outside 0..9"):
        get_task("cifar10", data_dir=root).prepare()

    with pytest.raises(NasUsageError, match="dev_size=0 must be >= 1"):
        get_task("cifar10", data_dir=root, dev_size=0)


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


def test_python_batches_never_run_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = make_cifar(tmp_path / "evil", "py")
    with open(root / "cifar-10-batches-py" / "data_batch_1", "wb") as f:
        pickle.dump({b"data": _Payload(), b"labels": [0]}, f, protocol=2)
    with pytest.raises(NasUsageError, match="data_batch_1 is not a CIFAR-10 python batch .*posix.system.* not allowed"):
        get_task("cifar10", data_dir=root).prepare()
    assert not (tmp_path / "PWNED").exists()
