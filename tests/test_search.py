"""The search driver, the random and evolutionary searchers, the output folder and `nas search`."""

import csv
import itertools
import json
import statistics

import pytest

import nas
from nas import NasUsageError, Searcher, TableEvaluator, search
from nas.searching import SearchOut, parse_options, searcher_options

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
VALUE = {"none": 0.0, "skip_connect": 1.0, "nor_conv_1x1": 2.0, "nor_conv_3x3": 3.0, "avg_pool_3x3": 0.5}


def cell(ops):
    return "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)


def write_table(path, cost_cols=True):
    """Full synthetic NAS-Bench-201 table: accuracy grows with convolutions, params in millions."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "cellstr", "acc", "err"] + (["params", "flops"] if cost_cols else []))
        for i, ops in enumerate(itertools.product(OPS, repeat=6)):
            acc = 50 + sum(VALUE[o] * (1 + 0.1 * k) for k, o in enumerate(ops)) + (i * 7919 % 13) / 10
            params = 0.1 + 0.3 * ops.count("nor_conv_3x3") + 0.05 * ops.count("nor_conv_1x1")
            w.writerow([i, cell(ops), f"{acc:.3f}", f"{100 - acc:.3f}"]
                       + ([f"{params:.4f}", f"{params * 100:.3f}"] if cost_cols else []))
    return path


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return write_table(tmp_path_factory.mktemp("tables") / "nb201.csv")


@pytest.fixture(scope="module")
def bare_table(tmp_path_factory):
    return write_table(tmp_path_factory.mktemp("tables") / "nocost.csv", cost_cols=False)


@pytest.fixture(scope="module")
def inner(table):
    return TableEvaluator("nb201", table, "acc")


@pytest.fixture
def evaluator(inner):
    return Counting(inner)


class Counting:
    """Wraps an evaluator, counting calls per arch (to prove nothing is evaluated twice)."""

    def __init__(self, inner, interrupt_after=None):
        self.inner, self.calls, self.interrupt_after = inner, [], interrupt_after
        self.space, self.primary_metric = inner.space, inner.primary_metric
        self.greater_is_better, self.metric_names = inner.greater_is_better, inner.metric_names

    def evaluate(self, arch):
        if self.interrupt_after is not None and len(self.calls) >= self.interrupt_after:
            raise KeyboardInterrupt
        self.calls.append(tuple(arch))
        return self.inner.evaluate(arch)

    def evaluate_many(self, archs):
        return [self.evaluate(a) for a in archs]


def best_curve(records, budgets):
    best, curve = [], float("-inf")
    for r in records:
        curve = max(curve, r["score"])
        best.append(curve)
    return [best[b - 1] for b in budgets]


# ---- searchers ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["random", "evolutionary", "optuna"])
def test_budget_counts_distinct_archs_and_seed_is_reproducible(evaluator, name):
    result = search(evaluator, name, 60, seed=3)
    archs = [r["arch"] for r in result.records]
    assert len(archs) == 60 == len(set(archs)) == len(evaluator.calls) == len(set(evaluator.calls))
    assert result.best["score"] == max(r["score"] for r in result.records)
    again = search(evaluator, name, 60, seed=3)
    assert [r["arch"] for r in again.records] == archs
    other = search(evaluator, name, 60, seed=4)
    assert [r["arch"] for r in other.records] != archs


def test_evolution_beats_random_on_the_table(evaluator):
    budgets = (30, 100)
    evo = [best_curve(search(evaluator, "evolutionary", 100, seed=s).records, budgets) for s in range(8)]
    rnd = [best_curve(search(evaluator, "random", 100, seed=s).records, budgets) for s in range(8)]
    for i in range(len(budgets)):
        assert statistics.mean(c[i] for c in evo) > statistics.mean(c[i] for c in rnd)


def test_evolution_options_and_validation(evaluator):
    assert searcher_options(nas.SEARCHERS.get("evolutionary")) == {
        "population": 25, "tournament": None, "crossover": 0.0, "mutations": 1}
    result = search(evaluator, "evolutionary", 40, options={"population": 8, "tournament": 3, "crossover": 0.5})
    assert len({r["arch"] for r in result.records}) == 40
    with pytest.raises(NasUsageError, match="1 <= tournament <= population"):
        search(evaluator, "evolutionary", 5, options={"population": 4, "tournament": 9})
    with pytest.raises(NasUsageError, match="has no option.* colour; its options: population, tournament"):
        search(evaluator, "evolutionary", 5, options={"colour": 1})
    assert parse_options(["population=8", "crossover=0.5", "tournament=4"],
                         searcher_options(nas.SEARCHERS.get("evolutionary"))) == {
        "population": 8, "crossover": 0.5, "tournament": 4}
    with pytest.raises(NasUsageError, match="population: expected an integer"):
        parse_options(["population=many"], {"population": 25})


class Stubborn(Searcher):
    """Proposes from a short fixed list, again and again (to exercise the cache)."""

    name = "stubborn"

    def __init__(self, space, seed=0, feasible=None, maximize=True, directions=None, archs=()):
        super().__init__(space, seed, feasible, maximize, directions)
        self.archs, self.i, self.cached = [space.parse(a) for a in archs], 0, []

    def ask(self):
        arch = self.archs[self.i % len(self.archs)]
        self.i += 1
        return arch

    def tell_cached(self, arch, score, record=None):
        self.cached.append(arch)


def test_repeats_answered_from_cache_and_driver_gives_up(evaluator):
    space = evaluator.space
    archs = [cell(["nor_conv_3x3"] * 6), cell(["none"] * 6)]
    stubborn = Stubborn(space, archs=archs)
    result = search(evaluator, stubborn, budget=5)
    assert len(evaluator.calls) == 2 and len(result.records) == 2  # each arch evaluated once
    assert len(stubborn.cached) >= 100 and set(stubborn.cached) == {space.parse(a) for a in archs}
    assert "in a row" in result.stopped and "stopped" in result.summary()


def test_constraints_are_never_violated_and_need_costs(evaluator, bare_table):
    result = search(evaluator, "evolutionary", 40, max_params=400_000)
    assert all(r["params"] <= 400_000 for r in result.records)
    result = search(evaluator, "random", 40, max_macs=40e6)
    assert all(r["macs"] <= 40e6 for r in result.records)
    with pytest.raises(NasUsageError, match="--max-params need.*has none .*add a params/flops column"):
        search(TableEvaluator("nb201", bare_table, "acc"), "random", 5, max_params=1e6)
    with pytest.raises(NasUsageError, match="objective params need"):
        search(TableEvaluator("nb201", bare_table, "acc"), "random", 5, objectives="metric,params")


def test_multi_objective_pareto_front(evaluator):
    result = search(evaluator, "random", 80, objectives="metric,params", seed=1)
    front = result.pareto
    assert front and [o.direction for o in result.objectives] == ["maximize", "minimize"]
    values = [(r["score"], r["params"]) for r in result.records]
    for r in front:  # nothing evaluated dominates a front member
        assert not any(a >= r["score"] and p <= r["params"] and (a, p) != (r["score"], r["params"])
                       for a, p in values)
    off_front = [v for v in values if v not in {(r["score"], r["params"]) for r in front}]
    assert all(any(r["score"] >= a and r["params"] <= p for r in front) for a, p in off_front)
    summary = result.summary()
    assert len(summary["pareto"]) == len(front) and "values" not in summary["pareto"][0]
    assert search(evaluator, "random", 10, objectives="err").objectives[0].direction == "minimize"
    with pytest.raises(NasUsageError, match="unknown objective 'speed'; choose from: metric, params, macs, acc, err"):
        search(evaluator, "random", 5, objectives="metric,speed")


def test_bad_budget(evaluator):
    for bad in (0, -3):
        with pytest.raises(NasUsageError, match="--budget must be a positive"):
            search(evaluator, "random", bad)
    with pytest.raises(NasUsageError, match="unknown searcher 'bayes'; choose from: .*evolutionary"):
        search(evaluator, "bayes", 5)
    with pytest.raises(NasUsageError, match="cannot share work between --workers"):
        search(evaluator, "random", 5, workers=2, evaluator_factory=lambda: evaluator)


# ---- output folder, resume, interruption --------------------------------------------------------
def test_out_folder_contents(evaluator, tmp_path):
    out = tmp_path / "run"
    result = search(evaluator, "evolutionary", 25, out=out, objectives="metric,params")
    rows = list(csv.DictReader(open(out / "evaluations.csv")))
    assert len(rows) == 25 and rows[0].keys() >= {"index", "arch", "score", "params", "macs", "time", "acc"}
    assert [int(r["index"]) for r in rows] == list(range(1, 26))
    data = json.loads((out / "evaluations.json").read_text())
    assert [d["arch"] for d in data] == [r["arch"] for r in rows] and "metrics" in data[0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best"]["arch"] == result.best["arch"] and summary["evaluations"] == 25
    for png in ("best_so_far.png", "pareto.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "search.json").read_text())["metric"] == "acc"


def test_resume_counts_earlier_evaluations(evaluator, inner, tmp_path):
    out = tmp_path / "run"
    first = search(evaluator, "evolutionary", 20, out=out)
    second_eval = Counting(inner)
    second = search(second_eval, "evolutionary", 30, out=out)
    assert len(second_eval.calls) == 10  # only the 10 new archs
    archs = [r["arch"] for r in second.records]
    assert len(archs) == 30 == len(set(archs)) and archs[:20] == [r["arch"] for r in first.records]
    assert not {evaluator.space.encode(a) for a in second_eval.calls} & set(archs[:20])
    third_eval = Counting(inner)
    assert len(search(third_eval, "random", 30, out=out).records) == 30 and third_eval.calls == []


def test_interrupted_search_keeps_every_finished_evaluation(inner, tmp_path):
    out = tmp_path / "run"
    ev = Counting(inner, interrupt_after=7)
    with pytest.raises(KeyboardInterrupt):
        search(ev, "random", 50, out=out)
    rows = list(csv.DictReader(open(out / "evaluations.csv")))
    assert [r["arch"] for r in rows] == [ev.space.encode(a) for a in ev.calls] and len(rows) == 7
    assert len(json.loads((out / "evaluations.json").read_text())) == 7
    with open(out / "evaluations.csv", "a") as f:  # a torn line, as a kill mid-write leaves
        f.write("8,|nor_conv_3x3~0|+|no")
    resumed = Counting(inner)
    result = search(resumed, "random", 10, out=out)
    assert len(resumed.calls) == 3 and len(result.records) == 10
    assert len(list(csv.DictReader(open(out / "evaluations.csv")))) == 10


def test_out_folder_guards(evaluator, table, tmp_path):
    out = tmp_path / "run"
    search(evaluator, "random", 3, out=out)
    with pytest.raises(NasUsageError, match="holds a search with metric 'acc', not 'err'"):
        search(TableEvaluator("nb201", table, "err"), "random", 3, out=out)
    with SearchOut(out, {"space": "nb201", "metric": "acc"}):
        with pytest.raises(NasUsageError, match="another nas search is writing"):
            search(evaluator, "random", 3, out=out)
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "evaluations.csv").write_text("a,b\n1,2\n")
    with pytest.raises(NasUsageError, match="is not a nas search log"):
        search(evaluator, "random", 3, out=tmp_path / "odd")


# ---- CLI ----------------------------------------------------------------------------------------
def test_cli_json_is_pipeable(cli, table, tmp_path):
    code, out, err = cli("search", "--space", "nb201", "--table", table, "--metric", "acc",
                         "--searcher", "evolutionary", "--budget", 15, "--seed", 2,
                         "--searcher-opt", "population=5", "-O", "tournament=5",
                         "--max-params", "0.5M", "--out", tmp_path / "o", "--json")
    assert code == 0, err
    summary = json.loads(out)  # nothing but JSON on stdout
    assert summary["evaluations"] == 15 and summary["out"] == str((tmp_path / "o").resolve())
    assert summary["best"]["params"] <= 500_000
    assert nas.get_space("nb201").parse(summary["best"]["arch"])
    settings = json.loads((tmp_path / "o" / "search.json").read_text())
    assert settings["options"] == {"population": 5, "tournament": 5}
    code, out, err = cli("search", "--table", table, "--metric", "acc", "--searcher", "random",
                         "--budget", 8, "--objectives", "metric,params", "--out", tmp_path / "p")
    assert code == 0, err
    assert "top 8 of 8 evaluated archs" in out and "Pareto front" in out and "best:" in out


@pytest.mark.parametrize("args, message", [
    (["--searcher", "bayes"], "unknown searcher 'bayes'; choose from:"),
    (["--budget", "0"], "--budget must be a positive"),
    (["--metric", "top1"], "no numeric column 'top1'; choose --metric from: acc, err"),
    (["--table", "/nonexistent/t.csv"], "cannot read table"),
    (["--sampler", "tpe"], "--sampler applies to --searcher optuna, not 'evolutionary'"),
    (["--searcher-opt", "population"], "is not KEY=VALUE"),
    (["--searcher-opt", "colour=red"], "has no option"),
    (["--max-params", "lots"], "--max-params 'lots' is not a number"),
    (["--workers", "2"], "cannot share work between --workers"),
    (["--objectives", "metric:up"], "direction must be max or min"),
])
def test_cli_bad_input_is_one_line_exit_2(cli, table, tmp_path, args, message):
    # A repeated option takes its last value, so args override the valid defaults.
    code, out, err = cli("search", "--table", table, "--metric", "acc", "--out", tmp_path / "o", *args)
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_needs_run_or_table(cli, tmp_path):
    code, _, err = cli("search", "--out", tmp_path / "o")
    assert code == 2 and "give --run RUN_DIR" in err
    code, _, err = cli("search", "--run", tmp_path, "--table", "t.csv", "--out", tmp_path / "o")
    assert code == 2 and "the reference the found child is looked up in" in err  # needs --metric
    code, _, err = cli("search", "--run", tmp_path / "nope", "--out", tmp_path / "o")
    assert code == 2 and "is not a folder" in err


def test_cli_run_uses_the_supernet_evaluator(cli, inner, tmp_path, monkeypatch):
    import nas.evaluate

    built = []

    class FakeSupernetEvaluator(Counting):
        def __init__(self, run_dir):
            super().__init__(inner)
            self.run_dir = run_dir
            built.append(run_dir)

    monkeypatch.setattr(nas.evaluate, "SupernetEvaluator", FakeSupernetEvaluator)
    (tmp_path / "run").mkdir()
    code, out, err = cli("search", "--run", tmp_path / "run", "--budget", 6, "--out", tmp_path / "o", "--json")
    assert code == 0, err
    assert built == [str(tmp_path / "run")] and json.loads(out)["evaluations"] == 6
    assert json.loads((tmp_path / "o" / "search.json").read_text())["source"] == str((tmp_path / "run").resolve())


# ---- plugins ------------------------------------------------------------------------------------
PLUGIN = '''
from nas import Searcher


class FirstUnseen(Searcher):
    """Walks the space in order (a plugin searcher living outside the repository)."""

    def ask(self):
        import itertools
        for arch in itertools.product(*(s.options for s in self.space.slots)):
            if arch not in self.seen and self.feasible(arch):
                return arch
        return None
'''


def test_entry_point_searcher_is_listed_and_usable(plugin_path, table, tmp_path, cli, monkeypatch):
    (plugin_path / "nas_test_plugin_searcher.py").write_text(PLUGIN)
    dist = plugin_path / "nas_test_plugin_searcher-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: nas-test-plugin-searcher\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[nas.searchers]\nin-order = nas_test_plugin_searcher:FirstUnseen\n")
    monkeypatch.setattr(nas.SEARCHERS, "_entries", dict(nas.SEARCHERS._entries))  # undone afterwards
    nas.SEARCHERS.discover(force=True)
    assert "in-order" in nas.list_searchers()
    code, out, err = cli("searchers", "--json")
    assert {"name": "in-order", "summary": "Walks the space in order (a plugin searcher living outside the repository)."} in json.loads(out)
    code, out, err = cli("search", "--table", table, "--metric", "acc", "--searcher", "in-order",
                         "--budget", 4, "--out", tmp_path / "o", "--json")
    assert code == 0, err
    rows = list(csv.DictReader(open(tmp_path / "o" / "evaluations.csv")))
    assert [r["arch"] for r in rows] == [cell(("none",) * 5 + (op,)) for op in OPS[:4]]
