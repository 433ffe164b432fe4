"""``nas interference``: the paper's analysis of gradient interference on a shared operator.

Fix one operator (slot ``I`` set to ``op``). For k = 1..(slots-1) sample pairs of children that
both use it and differ in exactly k other slots; on the same batch compare the two children's
gradients of the shared operator's weights (cosine), and the operator's inputs and outputs.
Observation 1: the more the children differ, the less their gradients agree. Observation 2:
gradient agreement follows the similarity of the operator's inputs and outputs.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from nas import _rundir as rundir
from nas._errors import NasUsageError
from nas.evaluate._forward import deterministic_mode, forward
from nas._rundir import atomic_write_json


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0))


def _setup(space_name: str, preset: str, task: str | None, run_dir: str | None, seed: int):
    from nas.train import TrainConfig, build_model, build_space, build_task, load_weights

    if run_dir:
        from nas._rundir import load_run_config

        cfg = TrainConfig.from_dict(load_run_config(run_dir)["train"])
        if cfg.space != space_name:
            raise NasUsageError(f"--run {run_dir} is a '{cfg.space}' run, not '{space_name}'")
    else:
        from nas._registry import SPACES

        cfg = TrainConfig(space=space_name, out="", preset=preset,
                          task=task or SPACES.get(space_name).default_task).resolve()
    torch.manual_seed(seed)
    t = build_task(cfg, Path(run_dir) if run_dir else None)
    space = build_space(cfg, t)
    model = build_model(cfg, space, t)
    if run_dir:
        load_weights(model, Path(run_dir) / rundir.WEIGHTS)
    return cfg, t, space, model


def interference(space_name: str, preset: str = "tiny", task: str | None = None, slot: int = 0,
                 op: str | None = None, pairs: int = 50, seed: int = 0, run_dir: str | None = None,
                 batch_size: int = 256, out: str | Path | None = None,
                 progress: bool = True) -> dict[str, Any]:
    from nas.analysis._stats import mean_ci

    cfg, t, space, model = _setup(space_name, preset, task, run_dir, seed)
    if not 0 <= slot < len(space.slots):
        raise NasUsageError(f"--slot {slot} is out of range; the space has slots 0..{len(space.slots) - 1}")
    choice = space.slot_modules(model)[slot]
    if op is None:  # the first option that has weights
        op = next((o for o in space.slots[slot].options if any(True for _ in choice.ops[o].parameters())), None)
    if op not in space.slots[slot].options or not list(choice.ops[op].parameters()):
        raise NasUsageError(f"--op must be an option with weights of slot '{space.slots[slot].name}': "
                            f"{', '.join(o for o in space.slots[slot].options if list(choice.ops[o].parameters()))}")
    shared = choice.ops[op]
    params = [p for p in shared.parameters()]
    others = [i for i, s in enumerate(space.slots) if i != slot and len(s.options) > 1]
    data = t.dataset("train")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(data), generator=g)[:batch_size].tolist()
    batch = t.collate([data[i] for i in idx])
    rng = random.Random(seed)
    captured: dict[str, torch.Tensor] = {}

    def hook(module, inputs, output):
        captured["in"] = inputs[0].detach()
        captured["out"] = (output[0] if isinstance(output, tuple) else output).detach()

    def probe(arch):
        model.zero_grad(set_to_none=True)
        logits = forward(model, arch, batch)
        t.loss(logits, batch["labels"]).backward()
        grad = torch.cat([p.grad.flatten() for p in params])
        return grad, captured["in"], captured["out"]

    handle = shared.register_forward_hook(hook)
    per_pair: list[dict[str, Any]] = []
    ks = list(range(1, len(others) + 1))
    from nas.report._progress import make_progress

    try:
        with deterministic_mode(model, space.has_batchnorm), make_progress(unit="pairs", enabled=progress) as bar:
            task_id = bar.add_task("interference", total=len(ks) * pairs)
            for k in ks:
                for _ in range(pairs):
                    a = list(space.sample(rng))
                    a[slot] = op
                    b = list(a)
                    for i in rng.sample(others, k):
                        b[i] = rng.choice([o for o in space.slots[i].options if o != a[i]])
                    ga, ia, oa = probe(tuple(a))
                    gb, ib, ob = probe(tuple(b))
                    per_pair.append({"k": k, "grad_cosine": _cos(ga, gb), "input_similarity": _cos(ia, ib),
                                     "output_similarity": _cos(oa, ob), "a": space.encode(a),
                                     "b": space.encode(b)})
                    bar.advance(task_id)
    finally:
        handle.remove()
        model.zero_grad(set_to_none=True)

    rows = []
    for k in ks:
        sel = [p for p in per_pair if p["k"] == k]
        row: dict[str, Any] = {"k": k, "n": len(sel)}
        for key in ("grad_cosine", "input_similarity", "output_similarity"):
            m, lo, hi = mean_ci([p[key] for p in sel])
            row[key], row[f"{key}_ci"] = m, [lo, hi]
        rows.append(row)
    report = {"space": space.name, "preset": space.preset, "task": t.name, "slot": slot,
              "slot_name": space.slots[slot].name, "op": op, "pairs": pairs, "seed": seed,
              "batch_size": len(idx), "run": run_dir, "trained": bool(run_dir), "rows": rows,
              "pairs_detail": per_pair}
    if out is not None:
        report["files"] = write_plots(report, Path(out))
    return report


def write_plots(report: dict[str, Any], out: Path) -> list[str]:
    from nas.report._plots import figure, lines, save, style

    out.mkdir(parents=True, exist_ok=True)
    rows = report["rows"]
    ks = [r["k"] for r in rows]
    state = "after training" if report["trained"] else "at initialisation"
    title = f"{report['space']}: shared {report['op']} in slot {report['slot_name']} ({state})"
    lines(out / "interference_k.png",
          {"gradient cosine": (ks, [r["grad_cosine"] for r in rows])}, "k (other slots that differ)",
          "cosine similarity of shared-op gradients", title,
          bands={"gradient cosine": ([r["grad_cosine_ci"][0] for r in rows],
                                     [r["grad_cosine_ci"][1] for r in rows])})
    fig, axes = figure(9, 4, ncols=2, sharey=True)
    pairs = report["pairs_detail"]
    for ax, key, label in ((axes[0], "input_similarity", "input"), (axes[1], "output_similarity", "output")):
        ax.scatter([p[key] for p in pairs], [p["grad_cosine"] for p in pairs], c=[p["k"] for p in pairs],
                   cmap="viridis", s=10, alpha=0.7)
        style(ax, f"cosine similarity of the shared op's {label}")
    axes[0].set_ylabel("gradient cosine")
    fig.suptitle(title, fontsize=10)
    save(fig, out / "interference_io.png")
    atomic_write_json(out / "interference.json", report)
    return [str(out / "interference.json"), str(out / "interference_k.png"), str(out / "interference_io.png")]
