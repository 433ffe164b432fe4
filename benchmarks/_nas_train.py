"""Shared by the benchmark scripts: run `nas train` in a single-thread subprocess, resumably."""

from __future__ import annotations

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


def nas_train(run: Path, options: list[str], timeout: float | None = None) -> Path | None:
    """``nas train OPTIONS --out RUN`` unless RUN is finished; resumes an interrupted RUN.

    With ``timeout`` (seconds), a run still training then is stopped and None returned: it
    resumes from its last checkpoint next time."""
    if (run / "train_summary.json").exists():
        return run
    cmd = [sys.executable, "-m", "nas", "train", *options, "--out", str(run)]
    if (run / "config.json").exists():
        cmd.append("--resume")
    t = time.time()
    try:
        proc = subprocess.run(cmd, env=single_thread_env(), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"  stopped {run.name} at the deadline (resumable)", flush=True)
        return None
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    print(f"  trained {run.name} in {time.time() - t:.0f} s", flush=True)
    return run
