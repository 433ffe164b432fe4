"""Does a uniformly sampled bert super-net learn the embedded `synthetic-text` task, or sit on its
loss plateau (ln 2 = 0.693, the label prior)?

docs/reproduction.md found uniform and MAGIC-A bert super-nets on the plateau for all of 3,000 steps
(AdamW lr 0.002, batch 64) while MAGIC-T left it; a ranking measured on a super-net that learned
nothing is noise. This trains bert tiny super-nets over a grid of modes x learning rates x seeds
(`nas train`, one thread each, cached and resumable) and reports, per run, the first step at which
the training loss (mean of 50 steps) falls below 0.6 ("left the plateau", or "never"), the loss
over the last tenth of the steps, and the wall time.

    python benchmarks/bert_plateau.py --modes uniform --lrs 0.0005,0.001,0.002,0.004 --seeds 2
    python benchmarks/bert_plateau.py --report-only

Writes `plateau.md` and `plateau.json` under `--out`.
"""

from __future__ import annotations

import argparse
import json
import statistics
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _nas_train import final_loss, nas_train, task_losses

PLATEAU_EXIT = 0.6  # ln 2 = 0.693 is the plateau; 0.6 is clearly below it
WINDOW = 50


def run_name(mode: str, lr: str, steps: int, seed: int) -> str:
    return f"{mode}-lr{lr}-steps{steps}-seed{seed}"


def train(args, mode: str, lr: str, seed: int) -> Path | None:
    return nas_train(args.out / "runs" / run_name(mode, lr, args.steps, seed), [
        "bert", "--task", "synthetic-text", "--mode", mode, "--steps", str(args.steps),
        "--seed", str(seed), "--batch-size", str(args.batch), "--lr", lr])


def left_plateau(losses: list[float]) -> int | None:
    """The first step whose trailing 50-step mean loss is below 0.6, or None."""
    total = 0.0
    for i, loss in enumerate(losses):
        total += loss - (losses[i - WINDOW] if i >= WINDOW else 0.0)
        if i + 1 >= WINDOW and total / WINDOW < PLATEAU_EXIT:
            return i + 1
    return None


def report(args) -> list[dict]:
    rows = []
    for run in sorted((args.out / "runs").glob("*")):
        if not (run / "train_summary.json").exists():
            continue
        cfg = json.loads((run / "config.json").read_text())["train"]
        losses = task_losses(run)
        rows.append({"run": run.name, "mode": cfg["mode"], "lr": cfg["lr"], "steps": cfg["steps"],
                     "seed": cfg["seed"], "left_plateau_at": left_plateau(losses),
                     "final_loss": final_loss(losses),
                     "minutes": json.loads((run / "train_summary.json").read_text())["seconds"] / 60})
    lines = ["# bert tiny on synthetic-text: does the super-net leave the loss plateau?", "",
             f"Batch {args.batch}, AdamW (betas 0.9/0.999, weight decay 0.01) at the lr of each row, cosine with 5% warm-up; 'left at' = first step "
             f"whose {WINDOW}-step mean training loss is below {PLATEAU_EXIT} (plateau: ln 2 = 0.693).", "",
             "| mode | lr | steps | seeds | left the plateau at (per seed) | loss, last 10% (mean) | minutes |",
             "|---|---|---|---|---|---|---|"]
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["mode"], r["lr"], r["steps"]), []).append(r)
    for (mode, lr, steps), rs in sorted(groups.items()):
        rs.sort(key=lambda r: r["seed"])
        left = ", ".join(f"s{r['seed']}: {r['left_plateau_at'] or 'never'}" for r in rs)
        lines.append(f"| {mode} | {lr} | {steps} | {len(rs)} | {left} | "
                     f"{statistics.mean(r['final_loss'] for r in rs):.3f} | "
                     f"{statistics.mean(r['minutes'] for r in rs):.1f} |")
    (args.out / "plateau.md").write_text("\n".join(lines) + "\n")
    (args.out / "plateau.json").write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    print("\n".join(lines))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bert-plateau"))
    parser.add_argument("--modes", default="uniform")
    parser.add_argument("--lrs", default="0.002", help="peak learning rates, comma-separated")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    if not args.report_only:
        jobs = [(m, lr, s) for s in range(args.seeds) for lr in args.lrs.split(",") for m in args.modes.split(",")]
        args.out.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(args.jobs) as pool:
            for future in [pool.submit(train, args, *job) for job in jobs]:
                future.result()
    report(args)


if __name__ == "__main__":
    main()
