"""Zero-cost estimators: hand-computed values on tiny networks, every built-in on every space,
determinism by seed, `nas rank --estimator` / `nas search --estimator` end to end, and bad input."""

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import nas
from nas import NasUsageError, SearchSpace, Slot, get_estimator, list_estimators
from nas.evaluate import ZeroCostEvaluator, parse_estimators

from test_nb201 import write_table

BUILT_IN = ("jacov", "macs", "naswot", "params", "snip", "synflow")


class _MLPNet(nn.Module):
    """x -> Linear(2, w) -> ReLU -> Linear(w, 2): small enough to compute every proxy by hand."""

    def __init__(self, width: int):
        super().__init__()
        self.fc = nn.Linear(2, width)
        self.act = nn.ReLU()
        self.head = nn.Linear(width, 2)
        self.num_outputs, self.head_type = 2, "classification"

    def forward(self, x, arch, return_hidden=False):
        return self.head(self.act(self.fc(x)))


class TinyMLP(SearchSpace):
    name = "tiny-mlp"
    presets = {"tiny": object()}

    def __init__(self, preset="tiny"):
        self.preset, self.config = preset, None
        self.slots = [Slot("width", ("w2", "w3"))]
        self._cost_cache = {}

    def _make_slots(self):
        return self.slots

    def _build(self, only, num_outputs, head):
        return _MLPNet(int((only or ("w3",))[0][1:]))

    def example_input(self, batch_size=1):
        return (torch.zeros(batch_size, 2),), {}


def _child(w1, b1, w2, b2):
    space = TinyMLP()
    child = space.build_child(("w3",))
    with torch.no_grad():
        child.net.fc.weight.copy_(torch.tensor(w1))
        child.net.fc.bias.copy_(torch.tensor(b1))
        child.net.head.weight.copy_(torch.tensor(w2))
        child.net.head.bias.copy_(torch.tensor(b2))
    return space, child


W1 = [[1.0, -2.0], [0.5, 1.0], [-1.0, 0.0]]
B1 = [0.5, -1.0, 2.0]
W2 = [[1.0, -1.0, 2.0], [0.0, 3.0, -1.0]]
B2 = [0.25, -0.5]


def test_params_and_macs_by_hand():
    space, child = _child(W1, B1, W2, B2)
    assert get_estimator("params").score(child, None, space, ("w3",)) == 2 * 3 + 3 + 3 * 2 + 2  # 17
    assert get_estimator("params").score(None, None, space, ("w2",)) == 2 * 2 + 2 + 2 * 2 + 2  # 12
    assert get_estimator("macs").score(None, None, space, ("w3",)) == 2 * 3 + 3 * 2


def test_synflow_by_hand():
    """|theta| everywhere, input of ones: R = 1^T |W2| (|W1| 1 + |b1|) + 1^T |b2|;
    synflow = sum |W1| * dR/dW1 + sum |W2| * dR/dW2."""
    space, child = _child(W1, B1, W2, B2)
    a1, c1, a2 = np.abs(W1), np.abs(B1), np.abs(W2)
    h = a1.sum(1) + c1  # hidden units for x = (1, 1), all positive so ReLU passes them
    d_w2 = np.tile(h, (2, 1))  # dR/dW2[k, j] = h_j
    d_w1 = np.tile(a2.sum(0)[:, None], (1, 2))  # dR/dW1[j, i] = sum_k |W2[k, j]| * x_i
    expected = (a1 * d_w1).sum() + (a2 * d_w2).sum()
    assert get_estimator("synflow").score(child, None, space, ("w3",)) == pytest.approx(expected, rel=1e-12)
    # written out: row sums of |W1| (3, 1.5, 1) and hidden units h = (3.5, 2.5, 3), each times the
    # column sums of |W2| (1, 4, 3): (3 + 6 + 3) + (3.5 + 10 + 9)
    assert expected == 34.5


def test_naswot_by_hand():
    """Three inputs whose ReLU codes are known: K[i, j] = units where codes agree; log det K."""
    space, child = _child(W1, B1, W2, B2)
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    # pre-activations fc(x) = W1 x + b1:
    #   x0: (1.5, -0.5, 1.0) -> code 1 0 1;  x1: (-1.5, 0.0, 2.0) -> 0 0 1;  x2: (1.5, -2.5, 3.0) -> 1 0 1
    codes = np.array([[1, 0, 1], [0, 0, 1], [1, 0, 1]], float)
    k = codes @ codes.T + (1 - codes) @ (1 - codes).T
    assert k.tolist() == [[3, 2, 3], [2, 3, 2], [3, 2, 3]]  # x0 and x2 share a code: K is singular
    # singular K is regularised by 1e-6 of its mean diagonal (3): det(K + eps I) by hand
    eps = 3e-6
    m = k + eps * np.eye(3)
    det = (m[0, 0] * (m[1, 1] * m[2, 2] - m[1, 2] * m[2, 1]) - m[0, 1] * (m[1, 0] * m[2, 2] - m[1, 2] * m[2, 0])
           + m[0, 2] * (m[1, 0] * m[2, 1] - m[1, 1] * m[2, 0]))
    batch = {"input": x, "labels": torch.tensor([0, 1, 0])}
    assert get_estimator("naswot").score(child, batch, space, ("w3",)) == pytest.approx(math.log(det), rel=1e-6)
    # distinct codes: K = [[3, 2], [2, 3]] for x0, x1 -> log 5, no regularisation
    batch = {"input": x[:2], "labels": torch.tensor([0, 1])}
    assert get_estimator("naswot").score(child, batch, space, ("w3",)) == pytest.approx(math.log(5.0))


def test_snip_and_jacov_by_autograd_free_formulas():
    space, child = _child(W1, B1, W2, B2)
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0], [2.0, 1.0]])
    y = torch.tensor([0, 1, 0, 1])
    batch = {"input": x, "labels": y}
    a1, c1, a2, c2 = (np.array(v) for v in (W1, B1, W2, B2))
    pre = x.numpy() @ a1.T + c1
    h = np.maximum(pre, 0)
    logits = h @ a2.T + c2
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dlogits = (p - np.eye(2)[y.numpy()]) / len(x)  # mean cross-entropy
    d_w2 = dlogits.T @ h
    d_w1 = ((dlogits @ a2) * (pre > 0)).T @ x.numpy()
    snip = np.abs(a1 * d_w1).sum() + np.abs(a2 * d_w2).sum()
    assert get_estimator("snip").score(child, batch, space, ("w3",)) == pytest.approx(snip, rel=1e-5)
    # jacov: the Jacobian of sum(outputs) wrt each input is W1^T diag(relu') W2^T 1
    jac = np.stack([a1.T @ ((pre[i] > 0) * a2.sum(0)) for i in range(len(x))])
    v = np.clip(np.linalg.eigvalsh(np.corrcoef(jac)), 0, None)
    jacov = -np.sum(np.log(v + 1e-5) + 1 / (v + 1e-5))
    assert get_estimator("jacov").score(child, batch, space, ("w3",)) == pytest.approx(jacov, rel=1e-5)


def test_registry_lists_the_built_ins_and_parses_ensembles():
    assert set(BUILT_IN) <= set(list_estimators())
    assert parse_estimators("supernet+params") == ["supernet", "params"]
    for spec, message in (("nope", "unknown estimator 'nope'; choose from: supernet, jacov"),
                          ("params+params", "names params twice"), ("params+", "empty estimator")):
        with pytest.raises(NasUsageError, match=message):
            parse_estimators(spec)


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    from test_tasks_cifar10 import make_cifar

    return make_cifar(tmp_path_factory.mktemp("cifar"), "bin", per_batch=40)


@pytest.mark.parametrize("space", ["nb201", "mobilenetv2", "bert"])
def test_every_estimator_on_every_space_is_finite_and_deterministic(space, cifar):
    import random

    options = {"task": "cifar10", "data_dir": str(cifar)} if space == "nb201" else {}
    first = ZeroCostEvaluator("params", space, "tiny", **options)
    rng = random.Random(0)
    archs = [first.space.sample(rng) for _ in range(3)]
    for name in BUILT_IN:
        ev = ZeroCostEvaluator(name, space, "tiny", seed=0, task_obj=first.task)
        values = [ev.evaluate(a)[name] for a in archs]
        assert all(math.isfinite(v) for v in values), (space, name, values)
        # the same score in a fresh evaluator, whichever child it scores first
        again = ZeroCostEvaluator(name, space, "tiny", seed=0, task_obj=first.task)
        assert again.evaluate(archs[2])[name] == values[2]
        if ev.estimator.needs_model:  # initialisation (and batch) follow the seed
            other = ZeroCostEvaluator(name, space, "tiny", seed=1, task_obj=first.task).evaluate(archs[2])[name]
            assert other != values[2], (space, name)
        assert ev.evaluate(archs[0])["seconds"] >= 0


def test_a_space_without_task_refuses_data_estimators():
    with pytest.raises(NasUsageError, match="space 'tiny-mlp' has no default task; give --task"):
        nas.SPACES.add("tiny-mlp", TinyMLP)
        try:
            ZeroCostEvaluator("naswot", "tiny-mlp")
        finally:
            nas.SPACES._entries.pop("tiny-mlp")


def test_naswot_refuses_a_space_without_activations():
    space = TinyMLP()
    child = space.build_child(("w2",))
    child.net.act = nn.Identity()
    space.activation_modules = lambda net: []
    batch = {"input": torch.ones(2, 2), "labels": torch.tensor([0, 1])}
    with pytest.raises(NasUsageError, match="space 'tiny-mlp' lists none"):
        get_estimator("naswot").score(child, batch, space, ("w2",))


def test_rank_and_search_with_an_estimator_end_to_end(cli, cifar, tmp_path):
    table = write_table(tmp_path / "nb201.csv")
    common = ["--space", "nb201", "--task", "cifar10", "--data-dir", cifar]
    code, out, err = cli("rank", "--estimator", "naswot", *common, "--ground-truth", table,
                         "--arch-column", "cellstr", "--metric", "acc", "--children", 12,
                         "--out", tmp_path / "r", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["estimator"] == "naswot" and r["run"] is None and r["n"] == 12
    assert -1 <= r["kendall_tau"] <= 1 and "top1_regret" in r and r["estimator_seconds"]["naswot"] > 0
    ev = ZeroCostEvaluator("naswot", "nb201", task="cifar10", data_dir=str(cifar))
    assert [c["estimate"] for c in r["children"]] == [ev.evaluate(c["arch"])["naswot"] for c in r["children"]]
    assert "params" in r["baselines"] and (tmp_path / "r" / "rank.png").stat().st_size > 1000
    # an ensemble ranks by the mean of its members' ranks
    code, out, err = cli("rank", "--estimator", "params+naswot", *common, "--ground-truth", table,
                         "--arch-column", "cellstr", "--metric", "acc", "--children", 12,
                         "--out", tmp_path / "r2", "--json")
    assert code == 0, err
    e = json.loads(out)
    from scipy.stats import rankdata

    ranks = (rankdata([c["params"] for c in e["children"]]) + rankdata([c["naswot"] for c in e["children"]])) / 2
    assert [c["estimate"] for c in e["children"]] == pytest.approx(list(ranks))
    # the human report shows the params baseline beside the estimator's tau
    code, out, err = cli("rank", "--estimator", "synflow", *common, "--ground-truth", table,
                         "--arch-column", "cellstr", "--metric", "acc", "--children", 12, "--out", tmp_path / "r3")
    assert code == 0 and "params on the same 12 children: Kendall tau" in out
    # zero-shot search through the same driver, the table as the reference of the found child
    code, out, err = cli("search", "--estimator", "synflow", *common, "--table", table, "--arch-column",
                         "cellstr", "--metric", "acc", "--budget", 10, "--out", tmp_path / "s", "--json")
    assert code == 0, err
    s = json.loads(out)
    assert s["evaluations"] == 10 and s["best"]["arch"]
    assert s["reference"]["metric"] == "acc" and s["reference"]["optimum"] >= s["reference"]["value"]
    assert s["best"]["score"] == ZeroCostEvaluator("synflow", "nb201", task="cifar10", data_dir=str(cifar)
                                                   ).evaluate(s["best"]["arch"])["synflow"]
    assert "estimator synflow on nb201" in (tmp_path / "s" / "search.json").read_text()
    code, out, err = cli("search", "--estimator", "synflow", *common, "--table", table, "--arch-column",
                         "cellstr", "--metric", "acc", "--budget", 10, "--out", tmp_path / "s", "--json")
    assert code == 0 and json.loads(out)["best"] == s["best"]  # resumed: nothing new to evaluate


def test_zero_shot_search_with_objectives_constraints_and_workers(cli, tmp_path):
    """synflow needs no data: a two-objective Optuna search shared by 2 worker processes, under a
    parameter cap, each worker building its own evaluator from the picklable factory."""
    code, out, err = cli("search", "--estimator", "synflow", "--space", "nb201", "--searcher", "optuna",
                         "--objectives", "synflow,params:min", "--max-params", "60k", "--workers", 2,
                         "--budget", 8, "--out", tmp_path / "s", "--json")
    assert code == 0, err
    s = json.loads(out)
    assert s["evaluations"] == 8
    rows = json.loads((tmp_path / "s" / "evaluations.json").read_text())
    rows = rows["records"] if isinstance(rows, dict) else rows
    assert len({r["arch"] for r in rows}) == 8 and all(r["params"] <= 60_000 for r in rows)
    ev = ZeroCostEvaluator("synflow", "nb201")
    for r in rows[:3]:
        assert r["score"] == pytest.approx(ev.evaluate(r["arch"])["synflow"])


@pytest.mark.slow
def test_rank_an_estimator_against_cached_standalone_training(cli, tmp_path):
    """No table, no file: the children are trained standalone (cached), as for a super-net."""
    args = ["rank", "--estimator", "params", "--space", "bert", "--children", 3, "--retrain-steps", 3,
            "--cache-dir", tmp_path / "cache", "--out", tmp_path / "r", "--json"]
    code, out, err = cli(*args)
    assert code == 0, err
    r = json.loads(out)
    assert r["task"] == "synthetic-text" and len(r["ground_truth_source"]) == 1
    cached = json.loads(open(r["ground_truth_source"][0]).read())["results"]
    assert sorted(cached) == sorted(c["arch"] for c in r["children"])
    assert [c["ground_truth"] for c in r["children"]] == [cached[c["arch"]]["dev"]["accuracy"] for c in r["children"]]
    assert "baselines" not in r  # params is itself the baseline
