"""nas run: the whole pipeline on the embedded default (short budgets), resume, configs."""

import json
from pathlib import Path

import pytest

from nas.report import PipelineConfig, load_config_file

CONFIGS = Path(__file__).parents[1] / "configs"


def test_nas_run_end_to_end_and_resume(cli, tmp_path):
    out = tmp_path / "run"
    args = ("run", "--out", out, "--steps", 12, "--budget", 4, "--retrain-steps", 4, "--batch-size", 16)
    code, stdout, err = cli(*args, "--json")
    assert code == 0, err
    report = json.loads(stdout)
    for key in ("best_arch", "supernet_estimate", "retrained_metric", "comparison", "timings"):
        assert key in report
    labels = [row["label"] for row in report["comparison"]]
    assert labels == ["best", "random", "reference (bert-base)"]
    for row in report["comparison"]:
        assert row["params"] > 0 and row["macs"] > 0
    assert set(report["timings"]) >= {"train", "search", "retrain", "report", "total"}
    md = (out / "report.md").read_text()
    assert report["best_arch"] in md and "![search progress]" in md
    assert (out / "estimate_vs_retrained.png").exists()
    assert (out / report["plots"]["search_progress"]).exists()
    resolved = json.loads((out / "config.json").read_text())
    assert resolved["pipeline"]["mode"] == "uniform" and "torch" in resolved["versions"]

    # A rerun skips every finished stage and gives the same report.
    code, stdout, err = cli(*args, "--json")
    assert code == 0, err
    again = json.loads(stdout)
    assert again["skipped_stages"][:2] == ["train", "search"]
    assert again["best_arch"] == report["best_arch"]
    assert again["retrained_metric"] == report["retrained_metric"]

    # Other core options on the same folder are refused, nothing is overwritten.
    code, _, err = cli("run", "--out", out, "--steps", 99)
    assert code == 2 and "holds a pipeline run with other steps" in err


def test_config_file_with_cli_override(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("space: bert\nsteps: 7\nbudget: 3\nmax_macs: 2.5M\n")
    cfg = PipelineConfig.from_sources(str(cfg_file), {"steps": 9, "out": "x"})
    assert (cfg.steps, cfg.budget, cfg.max_macs, cfg.out) == (9, 3, 2.5e6, "x")
    bad = tmp_path / "bad.toml"
    bad.write_text("stepz = 3\n")
    from nas import NasUsageError

    with pytest.raises(NasUsageError, match="unknown config key\\(s\\) stepz"):
        PipelineConfig.from_sources(str(bad), {})


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.iterdir()))
def test_example_configs_parse(name):
    data = load_config_file(str(CONFIGS / name))
    cfg = PipelineConfig.from_sources(str(CONFIGS / name), {})
    assert cfg.space in ("bert", "mobilenetv2") and data


def test_embedded_config_equals_defaults():
    cfg = PipelineConfig.from_sources(str(CONFIGS / "embedded.toml"), {})
    default = PipelineConfig()
    for key, value in load_config_file(str(CONFIGS / "embedded.toml")).items():
        if key != "task":
            assert getattr(default, key) == value, key
    assert cfg.task == "synthetic-text"
