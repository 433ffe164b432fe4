"""Helpers for tests/test_zero.py, and the script it runs under the deepspeed launcher.

``deepspeed --num_gpus 2 tests/_zero_worker.py OUT`` trains, on 2 CPU ranks:

* ``OUT/zero0``: the default ``cpu.json`` (fp32, ZeRO off), the check below;
* ``OUT/zero1``: shipped ``multi_gpu_zero1.json`` (bf16, ZeRO 1), MAGIC-AT, weight decay and a
  large learning rate, checking after every step that the options the child did not use are
  bit-identical (fp32 master weights and Adam moments);
* ``OUT/zero2``: shipped ``multi_gpu_zero2.json`` in fp32 (ZeRO 2, gradient accumulation 2),
  MAGIC-T, no dropout, the same check; the test trains the same run on 1 rank and compares.

Each rank writes ``OUT/<run>/untouched_rank<r>.json``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]


def ds_config(out: Path, shipped: str, bf16: bool | None = None, stage: int | None = None,
              **optimizer_params: Any) -> str:
    """A shipped ds_config with precision / ZeRO stage / optimizer params changed, written to out."""
    ds = json.loads((ROOT / "ds_configs" / shipped).read_text())
    if bf16 is not None:
        ds["bf16"] = {"enabled": bf16}
    if stage is not None:
        ds["zero_optimization"] = {**ds.get("zero_optimization", {}), "stage": stage}
    ds["optimizer"]["params"].update(optimizer_params)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"ds_{Path(shipped).stem}_{bf16}_{stage}.json"
    path.write_text(json.dumps(ds))
    return str(path)


# The world-size comparison: the same run on 2 ranks (launcher) and on 1 (in-process).
WORLD_RUN = dict(space="bert", mode="magic-t", steps=6, seed=7, batch_size=16, save_every=6,
                 anchor_batches=1, eval_batch_size=64, space_overrides={"dropout": 0.0})


def _master(trainer) -> dict[str, dict[str, torch.Tensor]]:
    """Per module parameter: the optimizer's fp32 copy and its state (identical on every rank)."""
    from deepspeed.utils import safe_get_full_fp32_param, safe_get_full_optimizer_state

    opt = trainer.engine.optimizer
    fp32_of = {}
    if hasattr(opt, "fp16_groups") and hasattr(opt, "fp32_groups"):  # bf16/fp16 without ZeRO
        for lows, highs in zip(opt.fp16_groups, opt.fp32_groups):
            fp32_of.update({id(lo): hi for lo, hi in zip(lows, highs)})
    states = trainer.engine.basic_optimizer.state
    out = {}
    for name, p in trainer.engine.module.named_parameters():
        if hasattr(p, "_hp_mapping"):  # ZeRO 1/2: gathered from the partitions (a collective)
            entry = {"param": safe_get_full_fp32_param(p).clone()}
            if trainer.step > 0:
                for key in ("exp_avg", "exp_avg_sq", "step"):
                    entry[key] = safe_get_full_optimizer_state(p, key).clone()
        else:
            q = fp32_of.get(id(p), p)
            entry = {"param": q.detach().float().clone()}
            entry.update({k: v.clone() for k, v in states.get(q, {}).items() if torch.is_tensor(v)})
        entry["module"] = p.detach().clone()
        out[name] = entry
    return out


def watch_unused(trainer) -> dict[str, Any]:
    """Check every step of ``trainer.run()``: the parameters (module copy, fp32 master) and
    optimizer states of options the step's child did not use must not change at all."""
    report: dict[str, Any] = {"steps": 0, "touched_unused": [], "moved_used": 0, "unused_checked": 0}
    names = {id(p): n for n, p in trainer.engine.module.named_parameters()}
    original = trainer.train_step

    def train_step(arch, micro_batches):
        before = _master(trainer)
        stats = original(arch, micro_batches)
        after = _master(trainer)
        unused = set()
        for token, options in zip(arch, trainer._slot_params):
            for option, params in options.items():
                if option != token:
                    unused |= {names[id(p)] for p in params}
        for name, old in before.items():
            same = all(torch.equal(old[k], after[name][k]) for k in old)
            if name in unused:
                report["unused_checked"] += 1
                if not same:
                    report["touched_unused"].append([trainer.step, name])
            elif not torch.equal(old["param"], after[name]["param"]):
                report["moved_used"] += 1
        report["steps"] += 1
        return stats

    trainer.train_step = train_step
    return report


def main(out: Path) -> None:
    from nas.train import Trainer, TrainConfig

    runs = {
        "zero0": TrainConfig(space="bert", out=str(out / "zero0"), mode="uniform", steps=3, seed=1,
                             batch_size=16, anchor_batches=2, eval_batch_size=64, save_every=3,
                             ds_config=ds_config(out, "cpu.json", lr=0.01, weight_decay=0.1)),
        "zero1": TrainConfig(space="bert", out=str(out / "zero1"), mode="magic-at", steps=4, seed=3,
                             batch_size=16, anchor_every=2, align_warmup=1, align_ramp=0,
                             anchor_batches=2, eval_batch_size=64, save_every=4,
                             ds_config=ds_config(out, "multi_gpu_zero1.json", lr=0.01, weight_decay=0.1)),
        "zero2": TrainConfig(out=str(out / "zero2"),
                             ds_config=ds_config(out, "multi_gpu_zero2.json", bf16=False, weight_decay=0.1),
                             **WORLD_RUN),
    }
    for name, cfg in runs.items():
        trainer = Trainer(cfg, show_progress=False)
        report = watch_unused(trainer)
        trainer.run()
        report["world"] = trainer.world
        report["optimizer"] = type(trainer.engine.basic_optimizer).__name__
        report["wrapper"] = type(trainer.engine.optimizer).__name__
        rank = trainer.rank
        (out / name / f"untouched_rank{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT))
    main(Path([a for a in sys.argv[1:] if not a.startswith("--local_rank")][0]))
