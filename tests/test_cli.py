"""CLI basics: listings, usage errors as one line with exit code 2, launcher's --local_rank."""

import json

import pytest


@pytest.mark.parametrize(
    "args, message",
    [
        (["space", "show", "nope"], "unknown space 'nope'; choose from:"),
        (["space", "show", "bert", "--preset", "huge"], "unknown preset 'huge' for space 'bert'; choose from: "),
        (["space", "show", "bert", "--arch", "mha2,ffn9"], "token(s) but space 'bert'"),
        (["space", "show", "mobilenetv2", "--arch", ",".join(["k3e6"] * 15 + ["k9e9"])], "has no option 'k9e9'"),
        (["space", "sample", "bert", "--count", "3"], "No such option: --count"),
        (["search", "--space", "nb201", "--table", "missing.csv", "--metric", "x", "--searcher", "nope",
          "--out", "o"], "unknown searcher 'nope'"),
    ],
)
def test_usage_errors_are_one_line_exit_2(cli, args, message):
    code, out, err = cli(*args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_listings_json(cli):
    code, out, _ = cli("spaces", "--json")
    names = [r["name"] for r in json.loads(out)]
    assert {"bert", "mobilenetv2", "nb201"} <= set(names)
    code, out, _ = cli("searchers", "--json")
    assert {"random", "evolutionary", "optuna"} <= {r["name"] for r in json.loads(out)}


def test_space_show_json_tiny(cli):
    code, out, _ = cli("space", "show", "bert", "--arch", "bert-base", "--json")
    info = json.loads(out)
    assert info["space"] == "bert" and info["preset"] == "tiny" and info["arch"].startswith("mha4,ffn256")
    assert info["params"] > info["backbone_params"] > 0 and info["macs"] > 0
    assert [s["name"] for s in info["slots"]][:2] == ["mix0", "ffn0"]


def test_space_sample_is_seeded(cli):
    _, a, _ = cli("space", "sample", "bert", "--n", "4", "--seed", "3")
    _, b, _ = cli("space", "sample", "bert", "--n", "4", "--seed", "3")
    _, c, _ = cli("space", "sample", "bert", "--n", "4", "--seed", "4")
    assert a == b != c and len(a.splitlines()) == 4


def test_launcher_local_rank_before_subcommand(cli, monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    code, out, _ = cli("--local_rank=0", "spaces", "--json")
    assert code == 0 and json.loads(out)


def test_tasks_listing(cli):
    code, out, _ = cli("tasks", "--json")
    names = {r["name"] for r in json.loads(out)}
    assert code == 0 and {"synthetic-text", "digits", "imagenet", "glue:sst2", "glue:stsb"} <= names
