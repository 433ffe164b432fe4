"""Bad input to the training commands: one line, exit code 2, no traceback, nothing written.

Add a row to CASES for every new training option or input file: (argv, expected fragment). In argv,
``{tmp}`` is the test's folder and ``{out}`` a fresh --out that must not exist afterwards; FILES
writes the inputs the rows name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

TRAIN = ["train", "bert", "--out", "{out}", "--steps", "2", "--batch-size", "16"]

FILES: dict[str, bytes] = {
    "ds_list.json": b"[1, 2]",
    "ds_latin1.json": '{"train_batch_size": 8, "comment_x": "caf\u00e9"}'.encode("latin-1"),
    "ds_typo.json": b'{"train_bach_size": 8}',
    "ds_optimizer.json": b'{"train_batch_size": 8, "optimizer": {"type": "AdamX", "params": {}}}',
    "ds_scheduler.json": b'{"scheduler": {"type": "WarmupCosineLr", "params": {}}}',
    "ds_zero.json": b'{"zero_optimization": {"stage": 7}}',
    "ds_batch.json": b'{"train_batch_size": "sixteen"}',
    "steps_abc.toml": b'steps = "abc"\n',
    "steps_abc.yaml": b"steps: abc\n",
    "latin1.toml": 'task = "caf\u00e9"\n'.encode("latin-1"),
    "lr_list.toml": b"lr = [1, 2]\n",
    "glue/SST-2/train.tsv": b"sentence\tlabel\nhello \xff world\t1\n",
    "glue/SST-2/dev.tsv": b"sentence\tlabel\nhello world\t1\n",
    "a_file": b"not a folder\n",
}

CASES = [
    # option values (TrainConfig.check_values), before anything is written
    (TRAIN + ["--batch-size", "-4"], "--batch-size must be >= 1 (got -4)"),
    (TRAIN + ["--batch-size", "0"], "--batch-size must be >= 1 (got 0)"),
    (TRAIN + ["--lr", "nan"], "--lr must be a finite number > 0 (got nan)"),
    (TRAIN + ["--lr", "inf"], "--lr must be a finite number > 0 (got inf)"),
    (TRAIN + ["--lr", "-0.1"], "--lr must be a finite number > 0"),
    (TRAIN + ["--num-workers", "-2"], "--num-workers must be >= 0 (got -2)"),
    (TRAIN + ["--save-every", "0"], "--save-every must be >= 1 (got 0)"),
    (TRAIN + ["--save-every", "-3"], "--save-every must be >= 1"),
    (TRAIN + ["--steps", "0"], "--steps must be >= 1 (got 0)"),
    (TRAIN + ["--steps", "abc"], "Invalid value for '--steps'"),
    (TRAIN + ["--anchor-every", "0"], "--anchor-every must be >= 1"),
    (TRAIN + ["--anchor-batches", "0"], "--anchor-batches must be >= 1"),
    (TRAIN + ["--align-warmup", "-1"], "--align-warmup must be >= 0"),
    (TRAIN + ["--align-ramp", "-5"], "--align-ramp must be >= 0"),
    (TRAIN + ["--align-lambda", "nan"], "--align-lambda must be a finite number >= 0"),
    (TRAIN + ["--align-temperature", "0"], "--align-temperature must be a finite number > 0"),
    (TRAIN + ["--anchor-margin", "-1"], "--anchor-margin must be a finite number >= 0"),
    (TRAIN + ["--align", "kl"], "unknown alignment 'kl'"),
    (TRAIN + ["--image-size", "0"], "--image-size must be >= 1"),
    (TRAIN + ["--mode", "magic-z"], "unknown mode 'magic-z'"),
    (["retrain", "bert", "--arch", "bert-base", "--out", "{out}", "--batch-size", "-4"],
     "--batch-size must be >= 1 (got -4)"),
    (["retrain", "bert", "--arch", "bert-base", "--out", "{out}", "--lr", "nan"], "--lr must be"),
    # DeepSpeed configs
    (TRAIN + ["--ds-config", "{tmp}/ds_list.json"], "must hold a JSON object, not a list"),
    (TRAIN + ["--ds-config", "{tmp}/ds_latin1.json"], "is not UTF-8 text"),
    (TRAIN + ["--ds-config", "{tmp}/glue"], "is a folder"),
    (TRAIN + ["--ds-config", "{tmp}/ds_typo.json"],
     "unknown DeepSpeed config key 'train_bach_size' in {tmp}/ds_typo.json (did you mean 'train_batch_size'?)"),
    (TRAIN + ["--ds-config", "{tmp}/ds_optimizer.json"], "unknown optimizer type 'AdamX'"),
    (TRAIN + ["--ds-config", "{tmp}/ds_scheduler.json"],
     "unknown scheduler type 'WarmupCosineLr' in {tmp}/ds_scheduler.json (did you mean 'WarmupCosineLR'?)"),
    (TRAIN + ["--ds-config", "{tmp}/ds_zero.json"], "\"stage\" 0, 1 or 2"),
    (TRAIN + ["--ds-config", "{tmp}/ds_batch.json"], "'train_batch_size' in {tmp}/ds_batch.json must be an integer"),
    # --out that cannot be a run folder
    (["train", "bert", "--out", "{tmp}/a_file", "--steps", "1"], "is a file, not a folder"),
    (["train", "bert", "--out", "{tmp}/a_file/sub", "--steps", "1"], "cannot write to --out {tmp}/a_file/sub"),
    # data met while the run is being set up: the folder made for it is removed again
    (TRAIN + ["--task", "glue:sst2", "--data-dir", "{tmp}/glue"], "train.tsv is not UTF-8 text"),
    # `nas run --config` files
    (["run", "--out", "{out}", "--config", "{tmp}/steps_abc.toml"], "steps must be an integer, not 'abc' in"),
    (["run", "--out", "{out}", "--config", "{tmp}/steps_abc.yaml"], "steps must be an integer, not 'abc' in"),
    (["run", "--out", "{out}", "--config", "{tmp}/latin1.toml"], "is not UTF-8 text"),
    (["run", "--out", "{out}", "--config", "{tmp}/lr_list.toml"], "lr must be a number, not [1, 2]"),
    (["run", "--out", "{out}", "--config", "{tmp}/glue"], "is a folder"),
]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-input-train")
    for name, data in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


@pytest.mark.parametrize("argv,expected", CASES, ids=[" ".join(a[:1] + a[-2:]) for a, _ in CASES])
def test_bad_input_is_one_line_and_writes_nothing(cli, inputs, argv, expected):
    out = inputs / "out"
    assert not out.exists()
    before = _snapshot(inputs)
    fill = {"tmp": str(inputs), "out": str(out)}
    code, stdout, err = cli(*[a.format(**fill) for a in argv])
    assert code == 2, (code, stdout, err)
    assert "Traceback" not in err and "[rank" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert expected.format(**fill) in lines[0], err
    assert not out.exists(), "a failed start left a run behind"
    assert _snapshot(inputs) == before, "existing files were changed"


def test_failed_start_does_not_block_its_retry(cli, tmp_path):
    out = tmp_path / "D"
    code, _, err = cli("train", "bert", "--batch-size", "-4", "--out", out, "--steps", "1")
    assert code == 2 and "--batch-size must be >= 1" in err
    # An existing folder (with the user's file) that a start fails in is left as it was.
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    glue = tmp_path / "glue" / "SST-2"
    glue.mkdir(parents=True)
    (glue / "train.tsv").write_bytes(FILES["glue/SST-2/train.tsv"])
    (glue / "dev.tsv").write_bytes(FILES["glue/SST-2/dev.tsv"])
    code, _, err = cli("train", "bert", "--task", "glue:sst2", "--data-dir", tmp_path / "glue",
                       "--out", out, "--steps", "1")
    assert code == 2 and "not UTF-8" in err
    assert sorted(os.listdir(out)) == ["notes.txt"]
    code, _, err = cli("train", "bert", "--batch-size", "16", "--out", out, "--steps", "1",
                       "--anchor-batches", "1")
    assert code == 0, err
    assert json.loads((out / "config.json").read_text())["train"]["batch_size"] == 16
    assert (out / "notes.txt").read_text() == "mine"


def test_corrupt_image_met_mid_training(cli, tmp_path):
    """An unreadable image met while training stops the run with one line naming the file."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("val", 2)):
        for c in ("cat", "dog"):
            (tmp_path / "img" / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(
                    tmp_path / "img" / split / c / f"{i}.png")
    bad = tmp_path / "img" / "train" / "dog" / "1.png"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated mid-file
    code, _, err = cli("train", "mobilenetv2", "--task", "imagenet", "--data-dir", tmp_path / "img",
                       "--image-size", "16", "--steps", "2", "--batch-size", "8", "--anchor-batches", "1",
                       "--out", tmp_path / "r")
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"cannot read {bad}" in lines[0] and "--resume" in lines[0], err
