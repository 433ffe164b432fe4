"""Shared by the benchmark scripts: run `nas train` (resumably) and other `nas` commands in
single-thread subprocesses, and read a run's final loss."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def single_thread_env() -> dict:
    """This environment without rank variables, one thread: each job is its own one-process
    world, and two single-thread jobs use 2 cores better than one 2-thread job."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    return env


def run_nas(args: list[str], timeout: float | None = None) -> bool:
    """``python -m nas ARGS`` in a single-thread subprocess; False if still running after
    ``timeout`` seconds (then stopped), SystemExit with its stderr if it fails."""
    cmd = [sys.executable, "-m", "nas", *args]
    try:
        proc = subprocess.run(cmd, env=single_thread_env(), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return True


def nas_train(run: Path, options: list[str], timeout: float | None = None) -> Path | None:
    """``nas train OPTIONS --out RUN`` unless RUN is finished; resumes an interrupted RUN.

    With ``timeout`` (seconds), a run still training then is stopped and None returned: it
    resumes from its last checkpoint next time."""
    if (run / "train_summary.json").exists():
        return run
    args = ["train", *options, "--out", str(run)]
    if (run / "config.json").exists():
        args.append("--resume")
    t = time.time()
    if not run_nas(args, timeout):
        print(f"  stopped {run.name} at the deadline (resumable)", flush=True)
        return None
    print(f"  trained {run.name} in {time.time() - t:.0f} s", flush=True)
    return run


def task_losses(run: Path) -> list[float]:
    """The training loss of every step of a run (its metrics.jsonl)."""
    return [json.loads(x)["task_loss"] for x in (run / "metrics.jsonl").read_text().splitlines()]


def final_loss(losses: list[float]) -> float:
    """Mean over the last tenth of the steps (one step's loss is too noisy)."""
    tail = losses[-max(1, len(losses) // 10):]
    return sum(tail) / len(tail)
