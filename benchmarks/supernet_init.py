"""Does the tiny mobilenetv2 super-net learn? Its initialisation, measured (docs/reproduction.md).

Trains the super-net with uniform single-path sampling (a fresh uniformly sampled child every step,
plain PyTorch AdamW 3e-3, batch 64, full ``digits``) under three initialisations of the slots'
options -- timm's plain one, ``zero_init_last`` only, and ``zero_init_last`` + ``nested_init`` (the
defaults) -- and prints the mean training loss every 200 steps (chance: ln 10 = 2.30).

    python benchmarks/supernet_init.py --steps 1200
"""

from __future__ import annotations

import argparse
import json
import random
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

VARIANTS = {
    "timm init": {"zero_init_last": False, "nested_init": False},
    "zero_init_last": {"zero_init_last": True, "nested_init": False},
    "zero_init_last + nested_init": {"zero_init_last": True, "nested_init": True},
}


def run(name: str, steps: int, seed: int) -> dict:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    from nas import get_space, get_task

    task = get_task("digits", seed=0).prepare()
    x, y = task.dataset("train").tensors["input"], task.dataset("train").tensors["labels"]
    space = get_space("mobilenetv2", "tiny", **VARIANTS[name])
    net = space.build_supernet().train()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=0.0)
    rng, losses, curve = random.Random(seed), [], {}
    for step in range(1, steps + 1):
        arch = space.sample(rng)
        index = torch.randint(0, len(y), (64,))
        loss = F.cross_entropy(net(x[index], arch), y[index])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % 200 == 0:
            curve[step] = round(sum(losses[-200:]) / 200, 3)
    return {"init": name, "loss_every_200_steps": curve}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/supernet_init.json")
    args = parser.parse_args()
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(run, VARIANTS, [args.steps] * 3, [args.seed] * 3))
    for row in rows:
        print(json.dumps(row), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"steps": args.steps, "seed": args.seed, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
