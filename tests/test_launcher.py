"""Two CPU ranks through the deepspeed launcher: no hang, same children, same loss curve as one."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from nas.train import TrainConfig, train

pytestmark = pytest.mark.launcher


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_match_one_rank(tmp_path):
    launcher = shutil.which("deepspeed", path=str(Path(sys.executable).parent)) or shutil.which("deepspeed")
    assert launcher, "the deepspeed launcher is installed with the package"
    args = ["--out", str(tmp_path / "two"), "--steps", "8", "--batch-size", "16", "--seed", "5",
            "--mode", "magic-at", "--anchor-every", "2", "--align-warmup", "2", "--save-every", "8"]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    proc = subprocess.run(
        [launcher, "--num_gpus", "2", "--master_port", str(_free_port()), "--module", "nas", "train",
         "bert", *args], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    train(TrainConfig(space="bert", out=str(tmp_path / "one"), steps=8, batch_size=16, seed=5,
                      mode="magic-at", anchor_every=2, align_warmup=2, save_every=8),
          show_progress=False)
    two = [json.loads(x) for x in (tmp_path / "two/metrics.jsonl").read_text().splitlines()]
    one = [json.loads(x) for x in (tmp_path / "one/metrics.jsonl").read_text().splitlines()]
    assert [r["world_size"] for r in two] == [2] * 8
    assert [r["arch"] for r in two] == [r["arch"] for r in one]  # every rank trained rank 0's child
    assert [r["anchor"] for r in two] == [r["anchor"] for r in one]
    # Same global batch: the curves differ only by dropout masks and reduction order.
    diffs = [abs(a["loss"] - b["loss"]) for a, b in zip(one, two)]
    assert max(diffs) < 0.05, diffs
