"""benchmarks/gpu_check.py: its --cpu-dry-run runs the GPU check's code on tiny presets on CPU."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "gpu_check.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cpu_dry_run_prints_one_table(tmp_path, capsys):
    gpu_check = _load()
    result = gpu_check.main(["--cpu-dry-run", "--out", str(tmp_path / "r.json"),
                             "--work-dir", str(tmp_path / "work")])
    out = capsys.readouterr().out
    assert out.count("| space |") == 1  # one table
    for label in ("bert tiny", "mobilenetv2 tiny", "multi_gpu_zero2.json"):
        assert label in out
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["dry_run"] is True and saved["complete"] is True and len(saved["rows"]) == 3
    bert, mbv2, multi = result["rows"]
    for row in (bert, mbv2):
        assert row["supernet_ms"] > 0 and row["child_ms"] > 0 and row["magic_a_ms"] > 0
        assert row["ratio_supernet_vs_child"] > 0 and row["ratio_magic_a_vs_uniform"] > 0
        assert row["supernet_params"] > row["child_params"]
        assert 0.0 <= row["evaluate"]["accuracy"] <= 1.0  # `nas evaluate` of the child ran
    assert bert["unit"] == "tokens/s" and mbv2["unit"] == "images/s"
    assert multi["world"] == 1 and multi["ds_config"] == "multi_gpu_zero2.json"
    # The run folders are real `nas train` runs (config.json, metrics, weights for the evaluator).
    rows = (tmp_path / "work/bert-supernet/metrics.jsonl").read_text().splitlines()
    assert len(rows) == 4 and json.loads(rows[-1])["align_loss"] > 0  # 2 uniform + 2 MAGIC-A steps
    assert (tmp_path / "work/mobilenetv2-supernet/supernet.safetensors").exists()


def test_without_a_gpu_it_asks_for_the_dry_run(capsys):
    gpu_check = _load()
    if gpu_check.torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(SystemExit) as exc:
        gpu_check.main([])
    assert exc.value.code == 2
    assert "--cpu-dry-run" in capsys.readouterr().err


def test_gpu_json_variants_time_the_bert_step_under_each_edit(tmp_path):
    gpu_check = _load()
    result = gpu_check.main(["--cpu-dry-run", "--gpu-json-variants", "--out", str(tmp_path / "r.json"),
                             "--work-dir", str(tmp_path / "work")])
    rows = {r["ds_config"]: r for r in result["rows"][2:]}
    assert set(gpu_check.GPU_JSON_VARIANTS) <= set(rows)
    for name in gpu_check.GPU_JSON_VARIANTS:
        assert rows[name]["supernet_ms"] > 0 and rows[name]["space"] == "bert"
    written = json.loads((tmp_path / "work/gpu-variant-fp32--zero-1.json").read_text())
    assert written["bf16"] == {"enabled": False} and written["zero_optimization"] == {"stage": 1}
    assert json.loads((tmp_path / "r.json").read_text())["complete"] is True


def test_tensor_by_tensor_sets_the_optimizer_step_of_every_trainer(tmp_path, monkeypatch):
    gpu_check = _load()
    seen = []
    original = gpu_check._prepare_for_timing

    def spy(trainer):
        original(trainer)
        seen.append(trainer.engine.basic_optimizer.multi_tensor)

    monkeypatch.setattr(gpu_check, "_prepare_for_timing", spy)
    result = gpu_check.main(["--cpu-dry-run", "--tensor-by-tensor", "--out", str(tmp_path / "r.json"),
                             "--work-dir", str(tmp_path / "work")])
    assert result["optimizer_step"] == "tensor-by-tensor"
    assert len(seen) == 5 and set(seen) == {False}  # 2 spaces x (super-net, child) + the 1-rank launcher row
    gpu_check.main(["--cpu-dry-run", "--out", str(tmp_path / "r2.json"), "--work-dir", str(tmp_path / "w2")])
    assert seen[5:] == [None] * 5  # the default again (multi-tensor on CUDA)
