"""Speed of scoring: children through an nb201 super-net, and every zero-cost estimator.

Three measurements, on NAS-Bench-201's CPU preset (``tiny``) and the docs' 100 children (seed 0):

1. side by side in one process, alternating child by child so machine load hits both: the
   super-net evaluator as it was (NCHW) and with the channels-last path (``nas evaluate`` /
   ``rank`` / ``search`` default for image tasks); seconds per child and the ratio, with the
   largest difference in estimate between the two;
2. ``nas rank RUN --children N`` end to end (``nas.analysis.rank``: 500 dev images, BN recalibrated
   on 4 batches of 64, the default, and on 20, the old default), wall seconds;
3. each built-in zero-cost estimator scoring the same N children (``nas rank --estimator``'s work).

    python benchmarks/scoring_speed.py                       # trains runs/scoring-speed first if absent
    python benchmarks/scoring_speed.py --side-by-side 30 --children 100 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from _nas_train import nas_train

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ESTIMATORS = ("params", "macs", "synflow", "naswot", "snip", "jacov")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=Path("runs/scoring-speed"))
    parser.add_argument("--data-dir", type=Path, default=SHARED / "cifar10-subset")
    parser.add_argument("--table", type=Path, default=SHARED / "nasbench201" / "nb201_12epoch.csv")
    parser.add_argument("--children", type=int, default=100)
    parser.add_argument("--side-by-side", type=int, default=30, help="children timed both ways")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bn-recal-batches", type=lambda t: [int(x) for x in t.split(",")], default=[4, 20],
                        help="recalibration batches of the end-to-end rank (4: the default; 20: the old one)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "scoring_speed.json")
    args = parser.parse_args()
    nas_train(args.run, ["nb201", "--task", "cifar10", "--data-dir", str(args.data_dir), "--steps", "200",
                         "--seed", "0"])
    import torch

    torch.set_num_threads(args.threads)
    from nas.analysis import rank, sample_children
    from nas.evaluate import SupernetEvaluator, ZeroCostEvaluator

    out: dict = {"threads": args.threads, "children": args.children, "machine": platform.processor() or platform.machine(),
                 "cpus": os.cpu_count(), "torch": torch.__version__, "load_average_start": os.getloadavg()}
    evs = {cl: SupernetEvaluator(args.run, use_cache=False, channels_last=cl) for cl in (False, True)}
    archs = sample_children(evs[True].space, args.children, 0)
    for ev in evs.values():
        ev.evaluate(archs[0])  # materialise batches
    seconds = {False: 0.0, True: 0.0}
    diff = 0.0
    for a in archs[1:args.side_by_side + 1]:
        got = {}
        for cl, ev in evs.items():
            start = time.perf_counter()
            got[cl] = ev.evaluate(a)["accuracy"]
            seconds[cl] += time.perf_counter() - start
        diff = max(diff, abs(got[True] - got[False]))
    n = len(archs[1:args.side_by_side + 1])
    out["side_by_side"] = {"n": n, "nchw_s_per_child": seconds[False] / n, "channels_last_s_per_child": seconds[True] / n,
                           "speedup": seconds[False] / seconds[True], "max_estimate_difference": diff}
    print(json.dumps(out["side_by_side"]), flush=True)
    out["rank_supernet"] = {}
    for batches in args.bn_recal_batches:
        start = time.perf_counter()
        r = rank(args.run, children=args.children, ground_truth=args.table, arch_column="cellstr",
                 metric="cifar10-test", out=args.run / f"rank-speed-bn{batches}", progress=False,
                 bn_recal_batches=batches)
        seconds = time.perf_counter() - start
        out["rank_supernet"][str(batches)] = {"seconds": seconds, "children_per_s": args.children / seconds,
                                              "kendall_tau": r["kendall_tau"], "channels_last": r["channels_last"]}
        print(batches, json.dumps(out["rank_supernet"][str(batches)]), flush=True)
    task = evs[True].task
    out["zero_cost"] = {}
    for name in ESTIMATORS:
        ev = ZeroCostEvaluator(name, evs[True].space, task_obj=task)
        start = time.perf_counter()
        for a in archs:
            ev.evaluate(a)
        out["zero_cost"][name] = {"seconds": time.perf_counter() - start}
        print(name, json.dumps(out["zero_cost"][name]), flush=True)
    out["load_average_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
