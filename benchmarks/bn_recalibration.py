"""Effect of BatchNorm recalibration on super-net estimates and ranking (mobilenetv2 on digits).

Uses the super-nets and the ground truth written by benchmarks/reproduce.py: for each number of
recalibration batches, the mean estimate, Kendall tau against the ground truth, and the seconds
per child evaluation.

    python benchmarks/bn_recalibration.py --repro docs/reproduction --batches 0,1,2,5,10,20,50
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repro", default="docs/reproduction")
    parser.add_argument("--batches", default="0,1,2,5,10,20,50")
    parser.add_argument("--modes", default="uniform")
    parser.add_argument("--out", default="benchmarks/results/bn_recalibration.json")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    from nas.evaluate import SupernetEvaluator
    from nas.analysis import ranking_report

    repro = Path(args.repro)
    truth = json.loads((repro / "ground_truth_mobilenetv2.json").read_text())
    archs = list(truth)
    runs = sorted(p for p in (repro / "runs").glob("mobilenetv2-*")
                  if any(p.name.startswith(f"mobilenetv2-{m}-seed") for m in args.modes.split(",")))
    rows = []
    for n in [int(x) for x in args.batches.split(",")]:
        taus, means, secs = [], [], []
        for run in runs:
            ev = SupernetEvaluator(run, bn_recal_batches=n, use_cache=False)
            t = time.time()
            est = [ev.evaluate(a)["accuracy"] for a in archs]
            secs.append((time.time() - t) / len(archs))
            means.append(statistics.mean(est))
            tau = ranking_report(est, [truth[a] for a in archs], n_resamples=200)["kendall_tau"]
            if tau is not None:
                taus.append(tau)
        row = {"recal_batches": n, "kendall_tau_mean": statistics.mean(taus) if taus else None,
               "kendall_tau_std": statistics.stdev(taus) if len(taus) > 1 else None,
               "mean_estimate": statistics.mean(means), "seconds_per_child": statistics.mean(secs),
               "runs": len(runs)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"runs": [r.name for r in runs], "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
