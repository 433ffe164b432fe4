"""NAS-Bench-201 tabular space and the table evaluator."""

import csv
import itertools
import json

import pytest

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


def test_no_supernet():
    space = get_space("nb201")
    with pytest.raises(NasUsageError, match="nb201 is tabular; use --table"):
        space.build_supernet()
    with pytest.raises(NasUsageError, match="nb201 is tabular"):
        space.build_child(RESNET)
    assert space.cost(RESNET) is None


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
    assert info["arch"] == RESNET and info["size"] == 15_625 and "params" not in info
