"""nas rank and nas interference on tiny settings."""

import json

import pytest

from nas import get_space
from nas.analysis import ranking_report, sample_children, top_k_overlap, top_k_regret
from nas.train import TrainConfig, train


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rank") / "run"
    train(TrainConfig(space="bert", out=str(out), steps=4, batch_size=16, save_every=4), show_progress=False)
    return out


def test_undefined_correlation_is_none():
    r = ranking_report([0.5] * 5, [1, 2, 3, 4, 5], k=2, n_resamples=50)
    assert r["kendall_tau"] is None and r["spearman_ci"] == [None, None]


def test_statistics():
    r = ranking_report([1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 6, 5], k=2, n_resamples=200)
    assert r["kendall_tau"] == pytest.approx(13 / 15)
    assert r["spearman"] == pytest.approx(1 - 6 * 2 / (6 * 35))
    assert r["kendall_tau_ci"][0] <= r["kendall_tau"] <= r["kendall_tau_ci"][1]
    assert top_k_overlap([1, 2, 3, 4], [4, 3, 2, 1], 2) == 0.0
    assert top_k_overlap([1, 2, 3, 4], [1, 2, 4, 3], 2) == 1.0


def test_regret_breaks_ties_at_random():
    truth = [1.0, 0.2, 0.4, 0.6, 0.8]
    # No ties: the truth of the estimate's pick(s) against the optimum.
    assert top_k_regret([5, 4, 3, 2, 1], truth, 1) == pytest.approx(0.0)
    assert top_k_regret([1, 2, 3, 4, 5], truth, 1) == pytest.approx(0.2)
    assert top_k_regret([1, 5, 4, 3, 2], truth, 2) == pytest.approx(1.0 - 0.4)
    # All estimates alike (a super-net on a loss plateau): a random pick, not the first child.
    assert top_k_regret([0.5] * 5, truth, 1) == pytest.approx(1.0 - 0.6)
    # Top-2 of 5 tied: E[best of a random pair] = (4*1.0 + 3*0.8 + 2*0.6 + 1*0.4) / 10.
    assert top_k_regret([0.5] * 5, truth, 2) == pytest.approx(1.0 - 0.8)
    # One child above, three tied for the second slot.
    assert top_k_regret([0, 9, 1, 1, 1], truth, 2) == pytest.approx(1.0 - (0.4 + 0.6 + 0.8) / 3)
    assert top_k_regret([0, 9, 1, 1, 1], [0.1, 0.2, 0.9, 0.5, 0.3], 2) == pytest.approx(0.9 - (0.9 + 0.5 + 0.3) / 3)


def test_children_are_distinct_and_stratified():
    space = get_space("bert")
    archs = sample_children(space, 12, seed=1)
    assert len(set(archs)) == 12
    strat = sample_children(space, 6, seed=1, stratify=True)
    params = [space.cost(a).params for a in strat]
    assert params == sorted(params) and len(set(strat)) == 6


def test_rank_with_ground_truth_file(cli, run, tmp_path):
    space = get_space("bert")
    archs = [space.encode(a) for a in sample_children(space, 6, seed=0)]
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({a: i / 10 for i, a in enumerate(archs)}))
    code, out, err = cli("rank", run, "--children", 6, "--ground-truth", gt, "--json", "--out", tmp_path / "r")
    assert code == 0, err
    r = json.loads(out)
    assert r["n"] == 6
    # A 4-step super-net may give every child the same estimate: tau is then undefined (None).
    assert r["kendall_tau"] is None or -1 <= r["kendall_tau"] <= 1
    assert [c["ground_truth"] for c in r["children"]] == [i / 10 for i in range(6)]
    assert (tmp_path / "r/rank.png").stat().st_size > 1000
    assert json.loads((tmp_path / "r/rank.json").read_text())["kendall_tau"] == r["kendall_tau"]


def test_rank_retrains_once_and_reuses_cache(run, tmp_path, monkeypatch):
    from nas.analysis import _ground_truth
    from nas.analysis import rank

    r1 = rank(run, children=3, retrain_steps=2, cache_dir=tmp_path / "cache", out=tmp_path / "a",
              progress=False)
    files = list((tmp_path / "cache/ground-truth").glob("*.json"))
    assert len(files) == 1 and "steps2-seed0" in files[0].name
    assert len(json.loads(files[0].read_text())["results"]) == 3

    def boom(*args, **kwargs):
        raise AssertionError("ground truth should come from the cache")

    monkeypatch.setattr(_ground_truth, "_retrain_one", boom)
    r2 = rank(run, children=3, retrain_steps=2, cache_dir=tmp_path / "cache", out=tmp_path / "b",
              progress=False)
    assert [c["ground_truth"] for c in r1["children"]] == [c["ground_truth"] for c in r2["children"]]


def test_ground_truth_cache_is_keyed_on_the_data_folder_not_its_spelling(tmp_path, monkeypatch):
    from nas.analysis import GroundTruth

    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    spellings = ["data", "./data/", str(tmp_path / "data"), "../" + tmp_path.name + "/data"]
    paths = {GroundTruth("bert", "tiny", "glue:sst2", 5, 0, tmp_path / "c", {"data_dir": d}).path for d in spellings}
    assert len(paths) == 1
    other = GroundTruth("bert", "tiny", "glue:sst2", 5, 0, tmp_path / "c", {"data_dir": str(tmp_path)}).path
    assert other not in paths


def test_rank_parallel_jobs(run, tmp_path):
    from nas.analysis import rank

    r = rank(run, children=3, retrain_steps=1, cache_dir=tmp_path / "cache", jobs=2, seed=4,
             out=tmp_path / "p", progress=False)
    assert len(r["children"]) == 3


def test_interference(cli, tmp_path):
    code, out, err = cli("interference", "bert", "--pairs", 3, "--batch-size", 16, "--slot", 2,
                         "--out", tmp_path / "i", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert [row["k"] for row in r["rows"]] == list(range(1, 8))
    for row in r["rows"]:
        assert row["n"] == 3 and -1 <= row["grad_cosine"] <= 1
        assert row["grad_cosine_ci"][0] <= row["grad_cosine"] <= row["grad_cosine_ci"][1]
    for name in ("interference.json", "interference_k.png", "interference_io.png"):
        assert (tmp_path / "i" / name).exists()
    detail = json.loads((tmp_path / "i/interference.json").read_text())["pairs_detail"]
    space = get_space("bert")
    for pair in detail:  # both children share the op and differ in exactly k other slots
        a, b = space.parse(pair["a"]), space.parse(pair["b"])
        assert a[2] == b[2] == r["op"] and space.distance(a, b) == pair["k"]


def test_interference_bad_slot(cli):
    code, _, err = cli("interference", "bert", "--slot", 99, "--pairs", 2)
    assert code == 2 and "--slot 99 is out of range" in err
