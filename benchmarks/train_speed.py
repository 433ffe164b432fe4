"""Training speed and memory: super-net step vs the same child standalone, MAGIC-A cost.

For each space (tiny preset, embedded task) and a few archs, time N optimizer steps (process CPU
time with one thread, so other load on the machine does not distort the comparison) of
  * the super-net in uniform mode forced to that arch,
  * the same child built standalone (mode fixed),
  * the super-net in magic-a / magic-at (alignment on from the first step: the extra no-grad
    anchor forward is included),
through the real DeepSpeed trainer, and record peak memory (max RSS growth of a fresh process).
Each measurement runs in its own process so memory figures do not mix.

    python benchmarks/train_speed.py --steps 60 --out benchmarks/results/train_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def measure(space: str, mode: str, arch: str, steps: int, batch: int) -> dict:
    """One measurement in this process (called in a child process)."""
    import torch

    from nas.train import TrainConfig, Trainer

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    out = Path(tempfile.mkdtemp()) / "run"
    fixed = mode == "fixed"
    cfg = TrainConfig(space=space, out=str(out), mode=mode if mode != "forced" else "uniform",
                      steps=steps + 10, batch_size=batch, arch=arch if fixed else None,
                      align_warmup=0, align_ramp=0, anchor_every=10**9, save_every=10**9,
                      anchor_batches=1)
    trainer = Trainer(cfg, show_progress=False)
    parsed = trainer.space.parse(arch)
    if not fixed:
        trainer.sampler.next = lambda: parsed  # same child every step: compare like with like
    if trainer.anchor is not None:  # an anchor that differs from the child in every slot it can
        other = tuple(next(o for o in s.options if o != a) for s, a in zip(trainer.space.slots, parsed))
        trainer.anchor.arch = other
    from nas.train import train_loader

    loader = iter(train_loader(trainer.task.dataset("train"), trainer.task.collate,
                               trainer.ds_config["train_batch_size"], 1, 0, 0, 1, 0, steps + 10))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times, cpu = [], []
    for i in range(steps + 10):
        batch_ = next(loader)
        t, c = time.perf_counter(), time.process_time()
        trainer.train_step(parsed, [batch_])
        trainer.step += 1
        if i >= 10:  # warm-up steps excluded
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    times.sort()
    cpu.sort()
    return {"space": space, "mode": mode, "arch": arch, "steps": steps, "batch": batch,
            "threads": torch.get_num_threads(),
            # CPU time of this process: robust to other load on the machine (one thread)
            "median_ms": 1000 * cpu[len(cpu) // 2], "median_wall_ms": 1000 * times[len(times) // 2],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_growth_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--archs", type=int, default=3, help="random archs per space")
    parser.add_argument("--out", default="benchmarks/results/train_speed.json")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        space, mode, arch, steps, batch = args.child
        print(json.dumps(measure(space, mode, arch, int(steps), int(batch))))
        return

    from nas import get_space

    rows = []
    for space_name, batch in (("bert", 64), ("mobilenetv2", 64)):
        space = get_space(space_name)
        rng = random.Random(0)
        archs = [space.encode(space.sample(rng)) for _ in range(args.archs)]
        for arch in archs:
            for mode in ("forced", "fixed", "magic-a", "magic-at"):
                proc = subprocess.run([sys.executable, __file__, "--child", space_name, mode, arch,
                                       str(args.steps), str(batch)], capture_output=True, text=True)
                if proc.returncode:
                    sys.exit(proc.stderr[-3000:])
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                rows.append(row)
                print(f"{space_name:12s} {mode:9s} {row['median_ms']:7.1f} ms/step  "
                      f"peak {row['peak_rss_mb']:.0f} MB  {arch}", flush=True)
    summary = {}
    for space_name in ("bert", "mobilenetv2"):
        def med(mode):
            xs = [r["median_ms"] for r in rows if r["space"] == space_name and r["mode"] == mode]
            return sum(xs) / len(xs)

        def mem(mode):
            xs = [r["peak_rss_mb"] for r in rows if r["space"] == space_name and r["mode"] == mode]
            return max(xs)

        summary[space_name] = {
            "supernet_ms": med("forced"), "standalone_ms": med("fixed"),
            "magic_a_ms": med("magic-a"), "magic_at_ms": med("magic-at"),
            "ratio_supernet_vs_standalone": med("forced") / med("fixed"),
            "ratio_magic_a_vs_uniform": med("magic-a") / med("forced"),
            "ratio_magic_at_vs_uniform": med("magic-at") / med("forced"),
            "peak_rss_mb": {m: mem(m) for m in ("forced", "fixed", "magic-a", "magic-at")},
        }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": rows, "summary": summary}, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
