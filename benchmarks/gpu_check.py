"""GPU check: super-net training cost at the `base` presets, through the real trainer.

For `bert --preset base` (sequence 128) and `mobilenetv2 --preset base` (224 px), on synthetic
tensors of the real shapes (no data needed), with `ds_configs/gpu.json` (bf16, ZeRO off):

* super-net step time (uniform mode, forced to the reference child) vs the same child trained
  standalone (mode fixed): the cost of carrying the whole super-net;
* MAGIC-A step (alignment to an anchor that differs from the child in every slot) / uniform step;
* throughput (tokens/s, images/s) of the super-net step, peak GPU memory of each;
* one `nas evaluate` of the child (`SupernetEvaluator`, the code behind the command, with its
  defaults: BN recalibration on 4 batches for mobilenetv2), on the GPU;
* the BERT super-net step with `ds_configs/gpu_fp16.json` (fp16, dynamic loss scaling);
* with two GPUs, a `deepspeed --num_gpus 2` launcher run of the BERT super-net with
  `ds_configs/multi_gpu_zero2.json` (bf16, ZeRO 2), at the same batch per GPU.
* with `--gpu-json-variants`, the BERT super-net step under ZeRO 0/1/2 and bf16/fp32 edits of
  `ds_configs/gpu.json` (where the optimizer's time goes: benchmarks/README.md).

Every step goes through `nas.train.Trainer.run()` (DeepSpeed engine, our masked optimizer, the
step loop); the timer wraps `Trainer.train_step` (forward, backward, optimizer step; data loading
and logging excluded) and synchronises the GPU. DeepSpeed checkpoints are not written (only
`supernet.safetensors`, for the evaluation). Prints one table and writes JSON to `--out`, rewritten
after each measurement (``"complete": false`` until the last), so a run cut short keeps what it
measured.

    python benchmarks/gpu_check.py                 # one (or two) GPUs, under 8 minutes
    python benchmarks/gpu_check.py --cpu-dry-run   # the same code on tiny presets, CPU (CI)

The dry run times 1 step after 1 warm-up step per measurement (its numbers mean nothing), skips
fp16 (DeepSpeed has no fp16 on most CPUs) and runs the launcher measurement in-process on one rank
(`--launcher` runs it through `deepspeed --num_gpus 2` on two CPU ranks).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from nas.tasks import TASKS, Task, register_task  # noqa: E402

# ---- synthetic tasks of the real shapes ----------------------------------------------------------


class _Pool(torch.utils.data.Dataset):
    """A fixed pool of examples served cyclically over a long virtual length (cheap to load)."""

    def __init__(self, tensors: dict[str, torch.Tensor], length: int):
        self.tensors, self.length = tensors, length
        self.n = len(next(iter(tensors.values())))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: t[index % self.n] for k, t in self.tensors.items()}


class SyntheticTokens(Task):
    """Random token sequences ``[CLS] t_1 ... t_{L-1}`` with random binary labels (BERT shapes)."""

    modality = "text"
    num_outputs = 2
    splits = ("train", "dev")
    option_defaults = {"seq_len": 128, "vocab_size": 30522, "pool": 512, "train_size": 16384,
                       "dev_size": 512}

    def _prepare(self, run_dir) -> None:
        o = self.options
        g = torch.Generator().manual_seed(self.seed)
        ids = torch.randint(2, o["vocab_size"], (o["pool"], o["seq_len"]), generator=g)
        ids[:, 0] = 1
        self._data = {"input": ids, "attention_mask": torch.ones_like(ids),
                      "token_type_ids": torch.zeros_like(ids),
                      "labels": torch.randint(0, 2, (o["pool"],), generator=g)}

    def _dataset(self, split: str):
        return _Pool(self._data, self.options["train_size"] if split == "train" else self.options["dev_size"])

    def space_overrides(self) -> dict[str, Any]:
        o = self.options
        return {"vocab_size": o["vocab_size"], "num_classes": 2, "max_positions": max(128, o["seq_len"])}


class SyntheticTokensTiny(SyntheticTokens):
    option_defaults = {**SyntheticTokens.option_defaults, "seq_len": 32, "vocab_size": 128,
                       "pool": 64, "train_size": 1024, "dev_size": 32}


class SyntheticImages(Task):
    """Random ImageNet-shaped images (3 x S x S, 1000 classes, random labels)."""

    modality = "image"
    splits = ("train", "dev")
    option_defaults = {"image_size": 224, "classes": 1000, "pool": 128, "train_size": 16384,
                       "dev_size": 512}

    def __init__(self, seed: int = 0, data_dir: Any = None, **options: Any):
        super().__init__(seed, data_dir, **options)
        self.num_outputs = self.options["classes"]

    def _prepare(self, run_dir) -> None:
        o = self.options
        g = torch.Generator().manual_seed(self.seed)
        self._data = {"input": torch.randn(o["pool"], 3, o["image_size"], o["image_size"], generator=g),
                      "labels": torch.randint(0, o["classes"], (o["pool"],), generator=g)}

    def _dataset(self, split: str):
        return _Pool(self._data, self.options["train_size"] if split == "train" else self.options["dev_size"])

    def space_overrides(self) -> dict[str, Any]:
        return {"num_classes": self.options["classes"], "image_size": self.options["image_size"]}


class SyntheticImagesTiny(SyntheticImages):
    option_defaults = {**SyntheticImages.option_defaults, "image_size": 32, "classes": 10, "pool": 32,
                       "train_size": 1024, "dev_size": 32}


for _name, _cls in (("gpu-check-text", SyntheticTokens), ("gpu-check-text-tiny", SyntheticTokensTiny),
                    ("gpu-check-images", SyntheticImages), ("gpu-check-images-tiny", SyntheticImagesTiny)):
    if _name not in TASKS.names():  # (imported twice: as a script and by a test)
        register_task(_name)(_cls)

# ---- what to measure -----------------------------------------------------------------------------

SETUPS = {
    # space: (preset, task, child arch, global batch, items per example, unit)
    "gpu": {
        "bert": ("base", "gpu-check-text", "bert-base", 32, 128, "tokens/s"),
        "mobilenetv2": ("base", "gpu-check-images", "mobilenetv2", 64, 1, "images/s"),
    },
    "dry": {
        "bert": ("tiny", "gpu-check-text-tiny", "bert-base", 4, 32, "tokens/s"),
        "mobilenetv2": ("tiny", "gpu-check-images-tiny", "mobilenetv2", 4, 1, "images/s"),
    },
}


# `--gpu-json-variants`: the BERT super-net step under edits of ds_configs/gpu.json (name: edit).
GPU_JSON_VARIANTS = {
    "bf16, ZeRO 0 (gpu.json)": {},
    "bf16, ZeRO 1": {"zero_optimization": {"stage": 1}},
    "bf16, ZeRO 2": {"zero_optimization": {"stage": 2, "contiguous_gradients": True,
                                           "ignore_unused_parameters": True}},
    "fp32, ZeRO 0": {"bf16": {"enabled": False}},
    "fp32, ZeRO 1": {"bf16": {"enabled": False}, "zero_optimization": {"stage": 1}},
}


def gpu_json_variant(name: str, work: Path) -> tuple[str, str]:
    """Write ds_configs/gpu.json with one of GPU_JSON_VARIANTS' edits applied; returns a
    folder-safe name for its run and the config's path."""
    config = json.loads((ROOT / "ds_configs" / "gpu.json").read_text())
    config.update(GPU_JSON_VARIANTS[name])
    slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    path = work / f"gpu-variant-{slug}.json"
    path.write_text(json.dumps(config, indent=2))
    return slug, str(path)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak_gib() -> float | None:
    """Peak GPU memory since the last reset (None on CPU)."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    return None


def _baseline_gib() -> float:
    """GPU memory held before a measurement's trainer is built (what earlier ones left behind)."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        return torch.cuda.memory_allocated() / 2**30
    return 0.0


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[len(xs) // 2]


class _Timed:
    """Wraps ``trainer.train_step`` (the project's step) with a synchronised wall-clock timer."""

    def __init__(self, trainer, baseline_gib: float = 0.0):
        self.trainer, self.times, self.baseline = trainer, [], baseline_gib
        original = trainer.train_step

        def train_step(arch, micro_batches):
            _sync()
            t = time.perf_counter()
            stats = original(arch, micro_batches)
            _sync()
            self.times.append(time.perf_counter() - t)
            return stats

        trainer.train_step = train_step

    def phase(self, steps: int, warmup: int) -> dict[str, Any]:
        """Train ``steps`` more steps through ``Trainer.run()``; median of those after warm-up."""
        self.times = []
        _reset_peak()
        self.trainer.cfg.steps = self.trainer.step + steps
        self.trainer.run()
        measured = self.times[warmup:] or self.times
        peak = _peak_gib()
        return {"step_ms": 1000 * _median(measured), "steps": len(measured),
                "peak_gib": None if peak is None else peak - self.baseline}


def _config(space: str, out: Path, mode: str, steps: int, setup: tuple, ds_config: str,
            arch: str | None = None, batch: int | None = None):
    from nas.train import TrainConfig

    preset, task, _, global_batch, _, _ = setup
    return TrainConfig(space=space, preset=preset, task=task, out=str(out), mode=mode, steps=steps,
                       seed=0, ds_config=ds_config, batch_size=batch or global_batch, arch=arch,
                       align_warmup=0, align_ramp=0, anchor_every=10**9, anchor_batches=1,
                       eval_batch_size=64, save_every=10**9)


# MaskedAdamW's step for every trainer built here: None = its default (multi-tensor on CUDA),
# False = tensor by tensor (`--tensor-by-tensor`, the step before the multi-tensor one).
MULTI_TENSOR: dict[str, bool | None] = {"value": None}


def _prepare_for_timing(trainer) -> None:
    """Set up a trainer for timing: no checkpoints, the optimizer step chosen by MULTI_TENSOR."""
    trainer.save_checkpoint = lambda: None
    trainer.engine.basic_optimizer.multi_tensor = MULTI_TENSOR["value"]


def measure_space(space_name: str, setup: tuple, out: Path, steps: int, warmup: int,
                  ds_config: str, bn_recal_batches: int) -> dict[str, Any]:
    from nas.evaluate import SupernetEvaluator
    from nas.train import Trainer, save_weights

    preset, _, arch_name, batch, per_example, unit = setup
    n = warmup + steps
    row: dict[str, Any] = {"space": space_name, "preset": preset, "batch": batch, "unit": unit}

    # The super-net: uniform steps, then MAGIC-A steps, on the same child (like with like).
    run_dir = out / f"{space_name}-supernet"
    base = _baseline_gib()
    trainer = Trainer(_config(space_name, run_dir, "magic-a", 2 * n, setup, ds_config), show_progress=False)
    _prepare_for_timing(trainer)
    child = trainer.space.parse(arch_name)
    other = tuple(next(o for o in slot.options if o != a) for slot, a in zip(trainer.space.slots, child))
    trainer.sampler.next = lambda: child
    timer = _Timed(trainer, base)
    trainer.anchor.arch = None  # no anchor yet: exactly a uniform-mode step
    uniform = timer.phase(n, warmup)
    trainer.anchor.arch = other  # alignment on from the first step (warm-up 0)
    magic_a = timer.phase(n, warmup)
    save_weights(trainer.engine.module, run_dir / "supernet.safetensors",
                 {"step": str(trainer.step), "space": space_name})
    params = sum(p.numel() for p in trainer.engine.module.parameters())
    del trainer, timer

    # The same child standalone.
    base = _baseline_gib()
    trainer = Trainer(_config(space_name, out / f"{space_name}-child", "fixed", n, setup, ds_config,
                              arch=arch_name), show_progress=False)
    _prepare_for_timing(trainer)
    standalone = _Timed(trainer, base).phase(n, warmup)
    child_params = sum(p.numel() for p in trainer.engine.module.parameters())
    del trainer
    _baseline_gib()

    # One `nas evaluate` of the child (the command's code, on the GPU when there is one).
    _sync()
    t = time.perf_counter()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    evaluator = SupernetEvaluator(run_dir, split="dev", bn_recal_batches=bn_recal_batches,
                                  device=device, use_cache=False)
    metrics = evaluator.evaluate(evaluator.space.parse(arch_name))
    _sync()
    eval_s = time.perf_counter() - t
    del evaluator

    row.update({
        "arch": arch_name, "supernet_params": params, "child_params": child_params,
        "supernet_ms": uniform["step_ms"], "child_ms": standalone["step_ms"],
        "ratio_supernet_vs_child": uniform["step_ms"] / standalone["step_ms"],
        "magic_a_ms": magic_a["step_ms"], "ratio_magic_a_vs_uniform": magic_a["step_ms"] / uniform["step_ms"],
        "throughput": batch * per_example / (uniform["step_ms"] / 1000),
        "peak_gib": {"supernet": uniform["peak_gib"], "magic_a": magic_a["peak_gib"],
                     "child": standalone["peak_gib"]},
        "evaluate_s": eval_s, "evaluate": metrics, "steps_timed": uniform["steps"],
    })
    return row


def measure_supernet(setup: tuple, out: Path, steps: int, warmup: int, ds_config: str,
                     name: str) -> dict[str, Any]:
    """The BERT super-net alone (uniform steps, forced child) under another ds_config: fp16 on one
    GPU, or ZeRO 2 on every rank of a launcher run (the same per-rank batch as on one GPU)."""
    from nas.train import Trainer

    preset, _, arch_name, batch, per_example, unit = setup
    n = warmup + steps
    world = int(os.environ.get("WORLD_SIZE", "1"))
    global_batch = batch * world
    base = _baseline_gib()
    trainer = Trainer(_config("bert", out / name, "uniform", n, setup, ds_config,
                              batch=global_batch), show_progress=False)
    _prepare_for_timing(trainer)
    child = trainer.space.parse(arch_name)
    trainer.sampler.next = lambda: child
    result = _Timed(trainer, base).phase(n, warmup)
    return {"space": "bert", "preset": preset, "world": trainer.world, "batch": global_batch,
            "unit": unit, "ds_config": Path(ds_config).name, "supernet_ms": result["step_ms"],
            "throughput": global_batch * per_example / (result["step_ms"] / 1000),
            "peak_gib": {"supernet": result["peak_gib"]}, "steps_timed": result["steps"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_multi(args, out: Path) -> dict[str, Any]:
    """``deepspeed --num_gpus 2 gpu_check.py --launcher-child ...``; rank 0's result."""
    launcher = shutil.which("deepspeed", path=str(Path(sys.executable).parent)) or shutil.which("deepspeed")
    if not launcher:
        return {"error": "the deepspeed launcher is not on PATH"}
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    result = out / "multi.json"
    cmd = [launcher, "--num_gpus", "2", "--master_port", str(_free_port()), str(Path(__file__).resolve()),
           "--launcher-child", str(result), "--steps", str(args.steps), "--warmup", str(args.warmup)]
    if args.cpu_dry_run:
        cmd.append("--cpu-dry-run")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.launcher_timeout)
    if proc.returncode or not result.exists():
        return {"error": f"launcher exited {proc.returncode}: {(proc.stderr or proc.stdout)[-600:]}"}
    return json.loads(result.read_text())


# ---- the table -----------------------------------------------------------------------------------

def _fmt(x, spec=".1f", none="-") -> str:
    return none if x is None else format(x, spec)


def table(rows: list[dict[str, Any]], device: str) -> str:
    mem = "peak GPU GiB" if torch.cuda.is_available() else "peak host RSS GiB"
    lines = [
        f"gpu_check on {device}",
        "",
        f"| space | batch | super-net step ms | child step ms | super-net / child | MAGIC-A step ms "
        f"| MAGIC-A / uniform | super-net throughput | {mem} super-net / MAGIC-A / child "
        f"| nas evaluate of the child |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r.get('label', '?')} | {r['error'][:200]} |  |  |  |  |  |  |  |  |")
            continue
        peak = r["peak_gib"]
        label = f"{r['space']} {r['preset']}"
        if "world" in r:
            label += f", {r['world']} rank{'s' * (r['world'] > 1)}, {r['ds_config']}"
        evaluation = "-"
        if "evaluate" in r:
            metric = ", ".join(f"{k} {v:.3f}" for k, v in r["evaluate"].items())
            evaluation = f"{r['evaluate_s']:.1f} s ({metric})"
        lines.append(
            f"| {label} | {r['batch']} | {_fmt(r['supernet_ms'])} | {_fmt(r.get('child_ms'))} "
            f"| {_fmt(r.get('ratio_supernet_vs_child'), '.2f')} | {_fmt(r.get('magic_a_ms'))} "
            f"| {_fmt(r.get('ratio_magic_a_vs_uniform'), '.2f')} | {r['throughput']:,.0f} {r['unit']} "
            f"| {_fmt(peak.get('supernet'), '.2f')} / {_fmt(peak.get('magic_a'), '.2f')} "
            f"/ {_fmt(peak.get('child'), '.2f')} | {evaluation} |")
    return "\n".join(lines)


def _host_peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-dry-run", action="store_true",
                        help="tiny presets and shapes on CPU: the same code paths, for CI")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps before them")
    parser.add_argument("--launcher", action="store_true",
                        help="with --cpu-dry-run: also run the 2-rank launcher measurement on CPU")
    parser.add_argument("--launcher-timeout", type=int, default=300)
    parser.add_argument("--tensor-by-tensor", action="store_true",
                        help="MaskedAdamW steps tensor by tensor (its step before the multi-tensor "
                             "one; a before/after on the same machine)")
    parser.add_argument("--gpu-json-variants", action="store_true",
                        help="also time the BERT super-net step under ZeRO 0/1/2 and bf16/fp32 "
                             "edits of ds_configs/gpu.json")
    parser.add_argument("--out", default=None,
                        help="JSON results (default benchmarks/results/gpu_check.json)")
    parser.add_argument("--work-dir", default=None, help="run folders (default: a temporary folder)")
    parser.add_argument("--launcher-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--local_rank", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    dry = args.cpu_dry_run
    if not dry and not torch.cuda.is_available():
        parser.error("no GPU visible; pass --cpu-dry-run to exercise the same code on CPU")
    MULTI_TENSOR["value"] = False if args.tensor_by_tensor else None
    args.steps = args.steps if args.steps is not None else (1 if dry else 20)
    args.warmup = args.warmup if args.warmup is not None else (1 if dry else 5)
    setups = SETUPS["dry" if dry else "gpu"]
    if dry:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    single = str(ROOT / "ds_configs" / "gpu.json")
    multi = str(ROOT / "ds_configs" / "multi_gpu_zero2.json")

    if args.launcher_child:  # one rank of the launcher run
        out = Path(args.launcher_child).parent
        result = measure_supernet(setups["bert"], out, args.steps, args.warmup, multi, "bert-multi")
        if int(os.environ.get("RANK", "0")) == 0:
            Path(args.launcher_child).write_text(json.dumps(result))
        return result

    started = time.perf_counter()
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="gpu_check_"))
    work.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU (dry run)"
    gpus = torch.cuda.device_count()
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / (
        "gpu_check_dry_run.json" if dry else "gpu_check.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []

    def record(row: dict[str, Any], complete: bool = False) -> dict[str, Any]:
        """Add a row and rewrite the JSON, so a run cut short (a lent GPU's time limit) keeps the
        measurements it finished (``complete`` false until the last)."""
        if row:
            rows.append(row)
            if not torch.cuda.is_available() and "error" not in row:
                row["peak_gib"] = {"supernet": _host_peak_gib()}  # host memory, whole process so far
            print(f"measured {row.get('label') or row.get('space')}: "
                  f"{_fmt(row.get('supernet_ms'))} ms/step", flush=True)
        text = table(rows, device)
        result = {"device": device, "gpus": gpus, "dry_run": dry, "complete": complete,
                  "optimizer_step": "tensor-by-tensor" if args.tensor_by_tensor else "default",
                  "seconds": time.perf_counter() - started, "steps": args.steps,
                  "warmup": args.warmup, "torch": torch.__version__, "rows": rows, "table": text}
        out.write_text(json.dumps(result, indent=2) + "\n")
        return result

    for space_name, setup in setups.items():
        record(measure_space(space_name, setup, work, args.steps, args.warmup, single,
                             bn_recal_batches=2 if dry else 20))
    if torch.cuda.is_available():  # fp16 with dynamic loss scaling (DeepSpeed refuses it on CPU)
        record(measure_supernet(setups["bert"], work, args.steps, args.warmup,
                                str(ROOT / "ds_configs" / "gpu_fp16.json"), "bert-fp16"))
    if args.gpu_json_variants:
        for name in GPU_JSON_VARIANTS:
            slug, config = gpu_json_variant(name, work)
            row = measure_supernet(setups["bert"], work, args.steps, args.warmup, config,
                                   f"bert-{slug}")
            record(row | {"ds_config": name})
    if gpus >= 2 or (dry and args.launcher):
        record({"label": "bert, 2 ranks", **launch_multi(args, work)})
    elif dry:  # the launcher's measurement, in this process on 1 rank: same code, no second GPU
        record(measure_supernet(setups["bert"], work, args.steps, args.warmup, multi, "bert-multi"))
    result = record({}, complete=True)
    print(result["table"], flush=True)
    print(f"\n{len(rows)} measurements in {result['seconds']:.0f} s; GPUs visible: {gpus}"
          + ("" if gpus >= 2 or dry else " (the 2-GPU launcher run needs two)"), flush=True)
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    return result


if __name__ == "__main__":
    main()
