"""The benchmark scripts' own logic: the harnesses' lanes (a deadline skips jobs that cannot finish
and stops running ones) and paired statistics (_modes.py), nb201.py's table-specific columns,
bert_ground_truth.py's self-agreement and bert_plateau.py's plateau detector."""

import importlib.util
import sys
import time
from pathlib import Path
from types import SimpleNamespace

BENCH = Path(__file__).parents[1] / "benchmarks"


def _load(name: str = "nb201"):
    sys.path.insert(0, str(BENCH))  # the script imports its sibling helper _nas_train
    try:
        spec = importlib.util.spec_from_file_location(f"{name}_bench", BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


def test_lanes_skip_what_cannot_finish_before_the_deadline(tmp_path, monkeypatch, capsys):
    bench = _load()
    trained, ranked = [], []
    monkeypatch.setattr(bench, "train", lambda args, *job: trained.append(job) or tmp_path / bench.run_name(*job, ""))
    monkeypatch.setattr(bench, "rank_run", lambda args, run: ranked.append(run.name) or {"kendall_tau": 0.0})
    args = SimpleNamespace(deadline=10.0, deadline_at=time.time() + 600, tag="", search_budget=0)
    bench.lane(args, ("uniform", 1000, 0))  # no pace known yet: it runs, and its pace is recorded
    assert trained == [("uniform", 1000, 0)] and ranked == ["uniform-steps1000-seed0"]
    assert len(bench._modes._seconds["uniform"]) == 1 and 0 <= bench._modes._seconds["uniform"][0] < 0.01
    bench._modes._seconds["uniform"] = [1.0]  # one second per step: 1,000 steps do not fit in 600 s
    bench.lane(args, ("uniform", 1000, 1))
    bench.lane(args, ("magic-t", 1000, 1))  # another mode's pace is its own (unknown: it runs)
    bench.lane(args, ("uniform", 100, 2))  # 100 steps fit
    assert trained[1:] == [("magic-t", 1000, 1), ("uniform", 100, 2)]
    assert "skipped uniform-steps1000-seed1: it would not finish before the deadline" in capsys.readouterr().out
    args.deadline_at = time.time() + 10  # under 30 s left: nothing starts
    bench.lane(args, ("magic-a", 10, 0))
    assert len(trained) == 3


def test_a_lane_failure_leaves_the_others_running(tmp_path, monkeypatch, capsys):
    bench = _load()

    def fail(args, *job):
        raise SystemExit("nas train failed: boom")

    monkeypatch.setattr(bench, "train", fail)
    bench.lane(SimpleNamespace(deadline=None, tag="t", search_budget=0), ("uniform", 10, 0))
    assert "FAILED uniform-steps10-seed0-t: nas train failed: boom" in capsys.readouterr().out


def test_nas_train_stops_at_the_timeout(tmp_path, monkeypatch, capsys):
    sys.path.insert(0, str(BENCH))
    try:
        import _nas_train
    finally:
        sys.path.remove(str(BENCH))
    import subprocess

    def slow(cmd, **kw):
        assert kw["timeout"] == 5 and kw["env"]["OMP_NUM_THREADS"] == "1"
        raise subprocess.TimeoutExpired(cmd, kw["timeout"])

    monkeypatch.setattr(subprocess, "run", slow)
    assert _nas_train.nas_train(tmp_path / "run", ["nb201"], timeout=5) is None
    assert "stopped run at the deadline (resumable)" in capsys.readouterr().out
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "train_summary.json").write_text("{}")
    assert _nas_train.nas_train(tmp_path / "done", ["nb201"], timeout=5) == tmp_path / "done"  # finished: skipped


def test_plateau_exit_is_the_first_step_whose_50_step_mean_is_below_0_6():
    plateau = _load("bert_plateau")
    assert plateau.left_plateau([0.693] * 500) is None
    losses = [0.693] * 100 + [0.4] * 100
    # the trailing mean first drops below 0.6 once 16 of its 50 losses are 0.4 (0.693 - 16 * 0.293 / 50 < 0.6)
    assert plateau.left_plateau(losses) == 116
    assert plateau.left_plateau([0.5] * 49) is None and plateau.left_plateau([0.5] * 50) == 50  # a full window first


def test_paired_t_interval_is_wider_than_the_bootstrap_with_few_seeds():
    bench = _load("_modes")
    a, b = [0.3, 0.4, 0.5], [0.2, 0.2, 0.2]  # differences 0.1, 0.2, 0.3: mean 0.2, sd 0.1
    lo, hi = bench.paired_t(a, b)
    assert (lo, hi) == __import__("pytest").approx((0.2 - 4.3027 * 0.1 / 3 ** 0.5, 0.2 + 4.3027 * 0.1 / 3 ** 0.5), abs=1e-4)
    m, blo, bhi = bench.paired_diff(a, b)
    assert m == __import__("pytest").approx(0.2) and lo < blo <= bhi < hi
    assert bench.paired_t([0.1], [0.0]) != bench.paired_t([0.1], [0.0])  # (nan, nan): no interval from one pair


def test_a_sweep_variant_is_compared_with_uniform_of_its_base_recipe():
    bench = _load("_modes")
    uni = [{"seed": 0, "tau": 0.1}]
    groups = {("lr0.1", 4000): {"uniform": uni, "magic-a": []},
              ("lr0.1+lam0.3", 4000): {"magic-a": [{"seed": 0, "tau": 0.2}]},
              ("other", 4000): {"magic-a": []}}
    assert bench.baseline(groups, "lr0.1", 4000) is uni
    assert bench.baseline(groups, "lr0.1+lam0.3", 4000) is uni  # the variant's own group has no uniform
    assert bench.baseline(groups, "lr0.1+lam0.3", 2000) == []  # never another budget
    assert bench.baseline(groups, "other", 4000) == []  # not a variant: no borrowed baseline


def test_ground_truth_self_agreement_is_the_tau_between_seeds(tmp_path):
    import json

    gt = _load("bert_ground_truth")
    archs = ["a", "b", "c", "d"]
    accs = {0: [0.5, 0.6, 0.7, 0.9], 1: [0.52, 0.7, 0.6, 0.95]}  # one swapped pair of 6: tau 4/6
    folder = tmp_path / "cache" / "ground-truth"
    folder.mkdir(parents=True)
    for seed, acc in accs.items():
        key = {"space": "bert", "preset": "tiny", "task": "synthetic-text", "steps": 100, "seed": seed,
               "train_options": {"batch_size": 64, "lr": 0.001}}
        results = {a: {"dev": {"accuracy": x}, "seconds": 10.0} for a, x in zip(archs, acc)}
        (folder / f"s{seed}.json").write_text(json.dumps({"key": key, "results": results}))
    (row,) = gt.settings(tmp_path, archs)
    assert (row["lr"], row["steps"], row["seeds"]) == (0.001, 100, [0, 1])
    assert abs(row["self_tau"] - 4 / 6) < 1e-9
    assert row["at_chance"] == 1  # "a": its best seed is 0.52
    (partial,) = gt.settings(tmp_path, archs + ["e"])  # "e" not trained yet: measured on the 4 every seed has
    assert partial["children"] == 4 and partial["self_tau"] == row["self_tau"]
    assert gt.settings(tmp_path, archs, least=5) == []  # too few children to report


def test_ground_truth_report_compares_settings_on_the_children_all_of_them_have(tmp_path):
    import json
    from types import SimpleNamespace

    gt = _load("bert_ground_truth")
    archs = ["a", "b", "c", "d", "e"]
    folder = tmp_path / "cache" / "ground-truth"
    folder.mkdir(parents=True)
    long_run = {0: [0.5, 0.6, 0.7], 1: [0.5, 0.6, 0.7]}  # 3 children so far, seeds agree: tau 1
    short_run = {0: [0.5, 0.6, 0.7, 0.8, 0.9], 1: [0.7, 0.6, 0.5, 0.8, 0.9]}  # first 3 reversed
    for steps, accs in ((100, short_run), (300, long_run)):
        for seed, acc in accs.items():
            key = {"space": "bert", "preset": "tiny", "task": "synthetic-text", "steps": steps, "seed": seed,
                   "train_options": {"batch_size": 64, "lr": 0.001}}
            results = {a: {"dev": {"accuracy": x}, "seconds": 1.0} for a, x in zip(archs, acc)}
            (folder / f"{steps}-{seed}.json").write_text(json.dumps({"key": key, "results": results}))
    gt.report(SimpleNamespace(out=tmp_path, task="synthetic-text", lrs=[0.001], steps=[100, 300]), archs)
    text = (tmp_path / "gt.md").read_text()
    assert "On the 3 children every setting has: self-agreement tau 0.001 x 100 steps: -1.000; " \
           "0.001 x 300 steps: 1.000." in text
    gt.report(SimpleNamespace(out=tmp_path, task="synthetic-text", lrs=[0.001], steps=[300]), archs)
    text = (tmp_path / "gt.md").read_text()
    assert "| 0.001 | 300 |" in text and "| 0.001 | 100 |" not in text  # only the settings asked for


def test_holm_adjusts_the_smallest_p_most_and_stays_monotone():
    bench = _load("_modes")
    adjusted = bench.holm({"magic-t": 0.04, "magic-a": 0.01, "magic-at": 0.03})
    assert adjusted == {"magic-a": 0.03, "magic-at": 0.06, "magic-t": 0.06}  # 3 x 0.01, 2 x 0.03, max(0.06, 0.04)
    assert bench.holm({"x": 0.6, "y": 0.5}) == {"y": 1.0, "x": 1.0}  # capped at 1


def test_anchor_percentile_reads_the_anchor_every_50_steps(tmp_path):
    bench = _load()
    table = tmp_path / "t.csv"
    table.write_text("cellstr,acc\na,10\nb,20\nc,30\nd,40\n")
    percentiles = bench.table_percentiles(SimpleNamespace(table=table, metric="acc"))
    assert percentiles == {"a": 0.0, "b": 0.25, "c": 0.5, "d": 0.75}
    rows = [{"anchor": None}] * 50 + [{"anchor": "b"}] * 50 + [{"anchor": "d"}] * 50  # steps 0, 50, 100
    assert bench.anchor_percentile(rows, percentiles) == 0.5  # mean of b and d; no anchor yet at step 0
    assert bench.anchor_percentile([{"arch": "a"}], percentiles) is None  # uniform / MAGIC-T: no anchor


def test_bert_modes_ground_truth_is_the_mean_of_complete_seeds(tmp_path):
    import json

    import pytest

    modes = _load("bert_modes")
    args = SimpleNamespace(out=tmp_path / "modes", gt_dir=tmp_path / "gt", task="synthetic-text", data_dir=None,
                           gt_lr=0.001, gt_steps=100, gt_seeds=2, children=4)
    archs = modes.children(4)
    first = modes.ground_truth(args.gt_dir, "synthetic-text", None, 0.001, 100, 0)
    for i, a in enumerate(archs):
        first._store(a, {"dev": {"accuracy": 0.5 + i / 10}, "seconds": 1.0})
    with pytest.raises(SystemExit, match="the ground truth lacks 4 child trainings: run bert_ground_truth.py"):
        modes.gt_file(args)  # seed 1 not trained yet
    second = modes.ground_truth(args.gt_dir, "synthetic-text", None, 0.001, 100, 1)
    for i, a in enumerate(archs):
        second._store(a, {"dev": {"accuracy": 0.7 + i / 10}, "seconds": 1.0})
    truth = json.loads(modes.gt_file(args).read_text())
    assert truth == pytest.approx({a: 0.6 + i / 10 for i, a in enumerate(archs)})


def test_seeds_are_a_count_or_a_list():
    import argparse

    import pytest

    modes = _load("_modes")
    assert modes.parse_seeds("3") == [0, 1, 2] and modes.parse_seeds("0,3,4") == [0, 3, 4]
    assert modes.parse_seeds("2,") == [2]
    for bad in ("0", "x", ","):
        with pytest.raises(argparse.ArgumentTypeError, match="selects no seed"):
            modes.parse_seeds(bad)


def test_script_usage_errors_exit_2_with_one_line():
    import subprocess

    for script, args, words in (("nb201.py", ["--seeds", "0"], "selects no seed"),
                                ("bert_modes.py", ["--train-args=--lr 0.1"], "name it with --tag"),
                                ("bert_ground_truth.py", ["--seeds", "1"], "at least 2"),
                                ("bert_ground_truth.py", ["--out", "/nonexistent-gt", "--report-only"],
                                 "no ground truth under")):
        proc = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 2, (script, proc.stderr)
        assert words in proc.stderr and "Traceback" not in proc.stderr


def test_a_sweep_variant_is_also_compared_with_the_same_mode_of_its_base_recipe():
    modes = _load("_modes")
    rows = [{"tag": "lr0.1", "steps": 10, "mode": "magic-a", "seed": s, "tau": t} for s, t in ((0, 0.2), (1, 0.1), (3, 0.5))]
    rows += [{"tag": "lr0.1+lam0.3", "steps": 10, "mode": "magic-a", "seed": s, "tau": t} for s, t in ((0, 0.1), (1, 0.0))]
    (line,) = modes.against_base_recipe(modes.group_rows(rows), "lr0.1+lam0.3", 10)
    assert line.startswith("magic-a against magic-a of recipe `lr0.1` on the same seeds (0,1): 0.050 vs 0.150, diff -0.100")
    assert "[t 95% -0.100, -0.100]" in line  # both differences are -0.1: a zero-width interval
    assert modes.against_base_recipe(modes.group_rows(rows), "lr0.1", 10) == []


def test_a_sweep_of_the_default_recipe_names_it_and_borrows_its_uniform_runs():
    """bert's default recipe has no tag: its sweep variants are '+VARIANT'."""
    modes = _load("_modes")
    rows = [{"tag": "", "steps": 10, "mode": m, "seed": s, "tau": 0.1 * s} for m in ("uniform", "magic-a") for s in (0, 1)]
    rows += [{"tag": "+lam3", "steps": 10, "mode": "magic-a", "seed": s, "tau": 0.2} for s in (0, 1)]
    groups = modes.group_rows(rows)
    base = {r["seed"]: r for r in modes.baseline(groups, "+lam3", 10)}
    assert sorted(base) == [0, 1] and all(r["mode"] == "uniform" and r["tag"] == "" for r in base.values())
    (note,) = [line for line in modes.baseline_note(groups[("+lam3", 10)], "+lam3", base) if line]
    assert "uniform of the default recipe" in note
    (line,) = modes.against_base_recipe(groups, "+lam3", 10)
    assert line.startswith("magic-a against magic-a of the default recipe on the same seeds (0,1): 0.200 vs 0.050")


def test_bert_modes_reports_when_each_super_net_left_the_plateau():
    bench = _load("bert_modes")
    by_mode = {"magic-t": [{"seed": 1, "left_plateau_at": None}, {"seed": 0, "left_plateau_at": 1219}],
               "uniform": [{"seed": 0, "left_plateau_at": 872}]}
    (_, line) = bench.plateau_line(by_mode)
    assert "uniform s0: 872; magic-t s0: 1219; magic-t s1: never -- 1 of 3 super-nets never did." in line


def test_bert_modes_scores_the_pairs_the_ground_truth_resolves():
    import pytest

    bench = _load("bert_modes")
    seeds = [{"a": 0.9, "b": 0.85, "c": 0.86, "d": 0.7}, {"a": 0.9, "b": 0.86, "c": 0.85, "d": 0.7}]
    pairs = bench.resolved_pairs(seeds)  # b and c swap between seeds: unresolved
    assert sorted(pairs) == [("a", "b"), ("a", "c"), ("a", "d"), ("b", "d"), ("c", "d")]
    assert bench.pair_agreement({"a": 3, "b": 2, "c": 1, "d": 0}, pairs) == 1.0
    assert bench.pair_agreement({"a": 3, "b": 0, "c": 1, "d": 2}, pairs) == pytest.approx(0.2)  # b-d, c-d wrong
    assert bench.pair_agreement({"a": 1, "b": 1, "c": 1, "d": 1}, pairs) == 0.0  # ties carry no information
    by_mode = {"uniform": [{"seed": s, "estimates": {"a": 3, "b": 2, "c": 1, "d": 0}} for s in (0, 1)],
               "magic-a": [{"seed": s, "estimates": {"a": 0, "b": 1, "c": 1, "d": 2}} for s in (0, 1)]}
    (_, line) = bench.resolved_line(by_mode, pairs, 4)
    assert line.startswith("On the 5 of 6 pairs") and "uniform 1.000 +- 0.000" in line
    assert "magic-a -1.000 +- 0.000 (diff -2.000" in line


def test_ceiling_report_reads_complete_pairs_of_seeds_and_the_convergence_probes(tmp_path):
    from scipy.stats import kendalltau

    sys.path.insert(0, str(Path(__file__).parent))
    from test_nb201 import write_table

    bench = _load("nb201_ceiling")
    args = SimpleNamespace(preset="tiny", n=6, steps=10, seeds=[0, 1], cache=tmp_path / "cache",
                           table=write_table(tmp_path / "t.csv"), metric="acc", data_dir=tmp_path,
                           convergence=[20], convergence_children=2, results=tmp_path / "out")
    archs = bench.children(args)
    accs = {0: [0.3, 0.5, 0.4, 0.6, 0.2, 0.7], 1: [0.35, 0.45, 0.5, 0.55, 0.25, 0.6]}
    for seed, values in accs.items():
        gt = bench.ground_truth(args, 10, seed)
        for a, v in list(zip(archs, values))[: 6 if seed == 0 else 5]:  # seed 1 lacks the last child
            gt._store(a, {"dev": {"accuracy": v}, "test": {"accuracy": v}, "params": 1, "macs": 1, "seconds": 2.0})
    bench.ground_truth(args, 20, 0)._store(archs[0], {"dev": {"accuracy": 0.9}, "test": {"accuracy": 0.9},
                                                      "params": 1, "macs": 1, "seconds": 4.0})
    r = bench.report(args)
    assert r["n"] == 5 and r["n_planned"] == 6  # only children both seeds have
    assert r["seed_to_seed_tau"] == kendalltau(accs[0][:5], accs[1][:5]).statistic
    truth = bench.table(args)
    assert r["tau_per_seed"]["0"] == kendalltau(accs[0][:5], [truth[a] for a in archs[:5]]).statistic
    assert r["cpu_seconds"] == 20.0
    assert r["convergence"][0] == {"arch": archs[0], "10": 0.3, "20": 0.9}
    assert r["convergence"][1] == {"arch": archs[1], "10": 0.5}
    bench.write(args, r)
    assert "| standalone, mean of seeds |" in (tmp_path / "out" / "ceiling.md").read_text()
