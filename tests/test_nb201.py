"""NAS-Bench-201: the weight-sharing space, the table evaluator, and ranking against a table."""

import csv
import itertools
import json

import pytest
import torch

import nas
from nas import NasUsageError, TableEvaluator, get_space

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
RESNET = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|"


def cell(ops):
    return "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)


def write_table(path, arch_col="cellstr", metric_col="acc", cost_cols=True, cells=None, index_col="arch"):
    """A full synthetic NAS-Bench-201 table: accuracy grows with convolutions; params in millions."""
    value = {"none": 0.0, "skip_connect": 1.0, "nor_conv_1x1": 2.0, "nor_conv_3x3": 3.0, "avg_pool_3x3": 0.5}
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([index_col, arch_col, metric_col, "val"] + (["params", "flops"] if cost_cols else []))
        for i, ops in enumerate(cells or itertools.product(OPS, repeat=6)):
            acc = 50 + sum(value[o] * (1 + 0.1 * k) for k, o in enumerate(ops)) + (i % 7) / 10
            params = 0.1 + 0.3 * ops.count("nor_conv_3x3") + 0.05 * ops.count("nor_conv_1x1")
            w.writerow([i, cell(ops), f"{acc:.3f}", f"{acc - 5:.3f}"]
                       + ([f"{params:.4f}", f"{params * 100:.3f}"] if cost_cols else []))
    return path


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return write_table(tmp_path_factory.mktemp("nb201") / "nb201.csv")


def test_space_shape_and_slot_order():
    space = get_space("nb201")
    assert space.size == 15_625
    assert [s.name for s in space.slots] == ["1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"]
    assert all(s.options == OPS for s in space.slots)
    assert "nb201" in nas.list_spaces()


def test_cell_string_round_trip():
    space = get_space("nb201")
    arch = space.parse(RESNET)
    assert arch == ("nor_conv_3x3", "none", "nor_conv_3x3", "skip_connect", "none", "none")
    assert space.encode(arch) == RESNET
    assert space.parse("resnet") == arch  # named arch
    assert space.parse(",".join(arch)) == arch  # the generic comma form is accepted too
    for _ in range(20):
        import random

        a = space.sample(random.Random(_))
        assert space.parse(space.encode(a)) == a


@pytest.mark.parametrize("text, message", [
    ("|none~0|+|none~0|none~1|", "has 2 node"),
    ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 .* has 1 input edge"),
    ("|none~0|+|none~0|none~0|+|none~0|none~1|none~2|", "should come from node 1"),
    ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "no option 'conv'"),
])
def test_bad_cell_strings_are_usage_errors(text, message):
    with pytest.raises(NasUsageError, match=message):
        get_space("nb201").parse(text)


def test_supernet_follows_the_benchmark_network():
    # NAS-Bench-201's own network (C 16, N 5) with every edge a 3x3 conv: the table's 1.5316 MB.
    bench = get_space("nb201", "bench")
    assert bench.cost("all-conv3x3").params == 1_531_546
    assert bench.cost("all-conv3x3").macs == 220_119_680  # the table's 220.11 M FLOPs (= MACs)
    space = get_space("nb201")  # the CPU preset, C 8, N 2
    none = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    assert space.cost(none).params < space.cost(RESNET).params < space.cost("all-conv3x3").params
    net = space.build_supernet()
    assert len(space.slot_modules(net)) == 6  # one per edge, grouping that edge in all 3N cells
    assert len(space.slot_modules(net)[0].ops["nor_conv_3x3"]) == 3 * 2
    x = torch.randn(4, 3, 32, 32)
    for arch in (RESNET, none, "all-conv3x3"):
        child = space.child(net, arch)
        net.eval(), child.eval()
        assert torch.allclose(net(x, space.parse(arch)), child(x), atol=1e-6)
    logits, hidden = net(x, space.parse(RESNET), return_hidden=True)
    assert logits.shape == (4, 10) and len(hidden) == 3 * 2 + 2  # cells and reduction blocks


def test_none_edges_keep_bn_recalibration_finite():
    from nas.evaluate import recalibrate_bn

    space = get_space("nb201", channels=4, cells=1)
    none = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    child = space.child(space.build_supernet(), none)
    recalibrate_bn(child, [{"input": torch.randn(8, 3, 32, 32)}])
    assert torch.isfinite(child.eval()(torch.randn(2, 3, 32, 32))).all()


def test_table_evaluator_detects_arch_column_and_costs(table):
    ev = TableEvaluator("nb201", table, "acc")
    assert ev.arch_column == "cellstr"
    assert ev.primary_metric == "acc" and ev.greater_is_better
    assert ev.metric_names == ["acc", "val"]  # index, params and flops are not metrics
    assert len(ev) == 15_625
    metrics = ev.evaluate(RESNET)
    assert set(metrics) == {"acc", "val"} and metrics["val"] == pytest.approx(metrics["acc"] - 5, abs=1e-3)
    cost = ev.space.cost(RESNET)  # params/flops columns in millions -> counts
    assert cost.params == round((0.1 + 0.3 * 2) * 1e6) and cost.macs == round((0.1 + 0.3 * 2) * 1e8)
    best_arch, best = ev.optimum()
    assert best == max(ev.evaluate(a)["acc"] for a in [best_arch, RESNET])
    assert ev.evaluate_many([RESNET, best_arch])[1]["acc"] == best


def test_nats_style_column_names(tmp_path):
    # NATS-Bench exports name the same things differently: arch_str, cifar10_test, no cost columns.
    path = write_table(tmp_path / "nats.csv", arch_col="arch_str", metric_col="cifar10_test",
                       cost_cols=False, index_col="index")
    ev = TableEvaluator("nb201", path, "cifar10-test")  # loose match: case and punctuation ignored
    assert ev.arch_column == "arch_str" and ev.primary_metric == "cifar10_test"
    assert ev.space.cost(RESNET) is None


def test_table_errors(tmp_path, table):
    with pytest.raises(NasUsageError, match="has no numeric column 'top1'; choose --metric from: acc, val"):
        TableEvaluator("nb201", table, "top1")
    with pytest.raises(NasUsageError, match="give --metric"):
        TableEvaluator("nb201", table, None)
    with pytest.raises(NasUsageError, match="cannot read table"):
        TableEvaluator("nb201", tmp_path / "missing.csv", "acc")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(NasUsageError, match="is empty"):
        TableEvaluator("nb201", tmp_path / "empty.csv", "acc")
    (tmp_path / "noarch.csv").write_text("a,b\n1,2\n")
    with pytest.raises(NasUsageError, match="no column .* holds arch strings .* --arch-column"):
        TableEvaluator("nb201", tmp_path / "noarch.csv", "b")
    with pytest.raises(NasUsageError, match="has no column 'cell'"):
        TableEvaluator("nb201", table, "acc", arch_column="cell")


def test_partial_table_names_missing_arch(tmp_path):
    cells = list(itertools.islice(itertools.product(OPS, repeat=6), 10))
    ev = TableEvaluator("nb201", write_table(tmp_path / "part.csv", cells=cells), "acc")
    assert len(ev) == 10
    with pytest.raises(NasUsageError, match=r"is not in table .*\(10 of the space's 15,625 archs"):
        ev.evaluate(RESNET)


def test_space_show_cli_with_cell_string(cli):
    code, out, err = cli("space", "show", "nb201", "--arch", "resnet", "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["arch"] == RESNET and info["size"] == 15_625
    assert info["params"] == get_space("nb201").cost(RESNET).params  # the super-net's child


# ---- the weight-sharing super-net, trained on CIFAR-10 and ranked against a table ------------------
@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    from test_tasks_cifar10 import make_cifar

    return make_cifar(tmp_path_factory.mktemp("cifar"), "bin", per_batch=40)


@pytest.fixture(scope="module")
def nb201_runs(cifar, tmp_path_factory):
    """A tiny nb201 super-net (C 4, N 1) trained in every mode on the CIFAR fixture."""
    from nas.train import TrainConfig, train

    root = tmp_path_factory.mktemp("nb201-runs")
    summaries = {}
    for mode in ("uniform", "magic-t", "magic-a", "magic-at"):
        cfg = TrainConfig(space="nb201", out=str(root / mode), task="cifar10", data_dir=str(cifar),
                          mode=mode, steps=6, batch_size=16, anchor_every=2, align_warmup=0,
                          align_ramp=0, space_overrides={"channels": 4, "cells": 1})
        summaries[mode] = train(cfg, show_progress=False)
    return root, summaries


def test_trains_in_every_mode(nb201_runs):
    root, summaries = nb201_runs
    for mode, summary in summaries.items():
        assert summary["steps"] == 6 and summary["final"]["loss"] == summary["final"]["loss"]  # not nan
        assert 0 <= summary["coverage"]["mean_min_max_ratio"] <= 1
        assert list(summary["coverage"]["per_slot"]) == [s.name for s in get_space("nb201").slots]
        rows = [json.loads(x) for x in (root / mode / "metrics.jsonl").read_text().splitlines()]
        archs = [get_space("nb201").parse(r["arch"]) for r in rows]
        if mode in ("magic-t", "magic-at"):  # the balanced walk: one edge changes per step
            assert all(sum(x != y for x, y in zip(a, b)) == 1 for a, b in zip(archs, archs[1:]))
        if mode in ("magic-a", "magic-at"):
            assert summary["anchor"] is not None and any(r["align_loss"] > 0 for r in rows)
    config = json.loads((root / "uniform" / "config.json").read_text())
    assert config["task"] == "cifar10" and config["preset"] == "tiny"


def test_rank_against_table(cli, nb201_runs, table, tmp_path):
    run = nb201_runs[0] / "uniform"
    code, out, err = cli("rank", run, "--ground-truth", table, "--arch-column", "cellstr", "--metric", "acc",
                         "--children", 8, "--json", "--out", tmp_path / "r", "--top-k", 3)
    assert code == 0, err
    r = json.loads(out)
    ev = TableEvaluator("nb201", table, "acc")
    truths = [c["ground_truth"] for c in r["children"]]
    assert r["n"] == 8 and all(c["ground_truth"] == ev.evaluate(c["arch"])["acc"] for c in r["children"])
    assert r["optimum"] == max(truths)
    # Regret: the best table value among the estimate's top-k, below the optimum of the ranked
    # children; children tied at the top-k boundary are averaged over every way to pick them.
    def regret(k):
        est = sorted((c["estimate"] for c in r["children"]), reverse=True)
        above = [c["ground_truth"] for c in r["children"] if c["estimate"] > est[k - 1]]
        tied = [c["ground_truth"] for c in r["children"] if c["estimate"] == est[k - 1]]
        picks = [max(above + list(p)) for p in itertools.combinations(tied, k - len(above))]
        return max(truths) - sum(picks) / len(picks)

    assert r["top1_regret"] == pytest.approx(regret(1))
    assert r["top3_regret"] == pytest.approx(regret(3))
    assert r["ground_truth_source"]["metric"] == "acc" and -1 <= r["kendall_tau"] <= 1
    assert (tmp_path / "r" / "rank.png").stat().st_size > 1000
    assert r["bn_recal_batches"] == 4 and r["device"] == "cpu"  # the evaluator's default, no GPU here
    code, out, err = cli("rank", run, "--ground-truth", table, "--arch-column", "cellstr", "--metric", "acc",
                         "--children", 8, "--json", "--out", tmp_path / "r0", "--bn-recal-batches", 0)
    assert code == 0, err
    r0 = json.loads(out)
    assert r0["bn_recal_batches"] == 0 and [c["arch"] for c in r0["children"]] == [c["arch"] for c in r["children"]]
    assert [c["estimate"] for c in r0["children"]] != [c["estimate"] for c in r["children"]]
    code, out, err = cli("rank", run, "--ground-truth", table, "--arch-column", "cellstr", "--metric", "acc",
                         "--children", 8, "--out", tmp_path / "r2")
    assert code == 0 and "top1_regret" in out and "top3_regret" not in out


def test_rank_a_run_with_an_ensemble_beside_the_params_baseline(cli, nb201_runs, table, tmp_path):
    from scipy.stats import kendalltau, rankdata

    run = nb201_runs[0] / "uniform"
    gt = ["--ground-truth", table, "--arch-column", "cellstr", "--metric", "acc", "--children", 8,
          "--bn-recal-batches", 0, "--json"]
    code, out, err = cli("rank", run, *gt, "--out", tmp_path / "s")
    assert code == 0, err
    plain = json.loads(out)
    code, out, err = cli("rank", run, "--estimator", "supernet+params", *gt, "--out", tmp_path / "e")
    assert code == 0, err
    both = json.loads(out)
    assert both["estimator"] == "supernet+params" and both["run"] == str(run)
    assert [c["supernet"] for c in both["children"]] == [c["estimate"] for c in plain["children"]]
    space = nas.evaluate.SupernetEvaluator(run).space  # the run's space (C 4, N 1)
    params = [space.cost(c["arch"]).params for c in both["children"]]
    assert [c["params"] for c in both["children"]] == params
    mean_rank = (rankdata([c["supernet"] for c in both["children"]]) + rankdata(params)) / 2
    assert [c["estimate"] for c in both["children"]] == pytest.approx(list(mean_rank))
    # the free baseline, on the same children, in both reports
    truths = [c["ground_truth"] for c in plain["children"]]
    assert plain["baselines"]["params"]["kendall_tau"] == pytest.approx(kendalltau(params, truths).statistic)


def test_rank_against_bad_tables(cli, nb201_runs, tmp_path):
    run = nb201_runs[0] / "uniform"
    cells = list(itertools.product(OPS, repeat=6))
    bad = {
        "partial.csv": (write_table(tmp_path / "partial.csv", cells=cells[:50]), "is not in table"),
        "dupe.csv": (None, "appears twice; a ground truth needs one row per arch"),
        "text.csv": (None, r"column 'acc' .* is not numeric \(line 3: 'n/a'\)"),
        "cell.csv": (None, r"line 2: .*cell string"),
    }
    full = (tmp_path / "full.csv")
    write_table(full)
    lines = full.read_text().splitlines()
    (tmp_path / "dupe.csv").write_text("\n".join(lines + [lines[5]]) + "\n")
    (tmp_path / "text.csv").write_text("\n".join([lines[0], lines[1], lines[2].replace(lines[2].split(",")[2], "n/a", 1)] + lines[3:]) + "\n")
    (tmp_path / "cell.csv").write_text("\n".join([lines[0], lines[1].replace("~0|+", "~1|+", 1)] + lines[2:]) + "\n")
    for name, (_, message) in bad.items():
        out_dir = tmp_path / f"out-{name}"
        code, out, err = cli("rank", run, "--ground-truth", tmp_path / name, "--arch-column", "cellstr",
                             "--metric", "acc", "--children", 8, "--out", out_dir)
        assert code == 2, (name, out, err)
        text = (out + err).strip()
        assert "Traceback" not in text and len(text.splitlines()) == 1, text
        assert __import__("re").search(message, text), (name, text)
        assert not out_dir.exists()  # nothing written
    code, out, err = cli("rank", run, "--ground-truth", full, "--arch-column", "nope", "--metric", "acc",
                         "--out", tmp_path / "o")
    assert code == 2 and "has no column 'nope'" in out + err


def test_search_supernet_reports_the_found_childs_table_value(cli, nb201_runs, table, tmp_path):
    run = nb201_runs[0] / "uniform"
    code, out, err = cli("search", "--run", run, "--table", table, "--metric", "acc", "--budget", 4,
                         "--searcher", "random", "--out", tmp_path / "s", "--json")
    assert code == 0, err
    summary = json.loads(out)
    ref, ev = summary["reference"], TableEvaluator("nb201", table, "acc")
    assert ref["arch"] == summary["best"]["arch"] and ref["value"] == ev.evaluate(ref["arch"])["acc"]
    assert (ref["optimum_arch"], ref["optimum"]) == ev.optimum()
    assert ref["regret"] == pytest.approx(ref["optimum"] - ref["value"]) and 0 <= ref["beats_fraction"] < 1
    assert json.loads((tmp_path / "s" / "summary.json").read_text())["reference"] == ref
    code, out, err = cli("search", "--run", run, "--table", table, "--metric", "acc", "--budget", 4,
                         "--searcher", "random", "--out", tmp_path / "s")
    assert code == 0 and "table optimum" in out


def test_run_records_the_resolved_deepspeed_config(nb201_runs):
    config = json.loads((nb201_runs[0] / "uniform" / "config.json").read_text())
    assert config["deepspeed"]["optimizer"] == {"type": "SGD", "params": {
        "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}}  # the space's default
    assert config["deepspeed"]["train_batch_size"] == 16
    assert config["versions"]["device"] == "cpu" and config["versions"]["torch"]  # what numerics depend on
