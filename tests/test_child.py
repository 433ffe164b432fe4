"""evaluate / retrain / export of children on the embedded tasks."""

import json
import subprocess
import sys

import pytest
import torch

from nas import NasUsageError
from nas.evaluate import SupernetEvaluator, recalibrate_bn
from nas.train import TrainConfig, train

ARCH = "mha2,ffn256,conv3,ffn128,mha4,id,conv7,ffn256"


@pytest.fixture(scope="module")
def bert_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "bert"
    train(TrainConfig(space="bert", out=str(out), steps=4, batch_size=16, save_every=4),
          show_progress=False)
    return out


@pytest.fixture(scope="module")
def mbv2_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "mbv2"
    train(TrainConfig(space="mobilenetv2", out=str(out), steps=6, batch_size=32, save_every=6, lr=0.01),
          show_progress=False)
    return out


def test_evaluate_json_and_cache(cli, bert_run):
    code, out, _ = cli("evaluate", bert_run, "--arch", ARCH, "--json")
    assert code == 0
    result = json.loads(out)
    assert result["arch"] == ARCH and 0.0 <= result["metrics"]["accuracy"] <= 1.0
    cache = json.loads((bert_run / "eval_cache.json").read_text())
    assert cache["dev|bn0"][ARCH] == result["metrics"]
    code, out, _ = cli("evaluate", bert_run, "--arch", ARCH, "--split", "test", "--json")
    assert code == 0 and json.loads(out)["split"] == "test"


def test_evaluator_matches_standalone_child(bert_run):
    ev = SupernetEvaluator(bert_run, use_cache=False)
    a = ev.evaluate(ARCH)
    child = ev.child(ARCH)
    from nas.evaluate import predict

    logits, labels = predict(child, None, ev.batches())
    assert ev.task.metrics(logits, labels)["accuracy"] == pytest.approx(a["accuracy"])
    many = ev.evaluate_many([ARCH, "bert-base"])
    assert many[0] == a and len(many) == 2


def test_bn_recalibration_replaces_supernet_statistics(mbv2_run):
    ev = SupernetEvaluator(mbv2_run, use_cache=False, bn_recal_batches=3)
    arch = ev.space.sample(__import__("random").Random(0))
    child = ev.space.child(ev.model, arch)
    bn = next(m for m in child.modules() if isinstance(m, torch.nn.BatchNorm2d))
    before = bn.running_mean.clone()
    assert recalibrate_bn(child, ev.recal_batches()) == 3
    assert not torch.allclose(before, bn.running_mean)
    # Recalibration works on a copy: the super-net's own statistics are untouched.
    name = next(n for n, m in ev.model.named_modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert dict(ev.model.named_modules())[name].running_mean is not bn.running_mean
    metrics = ev.evaluate(arch)
    assert 0.0 <= metrics["accuracy"] <= 1.0


def test_retrain_and_fine_tune(cli, bert_run, tmp_path):
    code, out, err = cli("retrain", "bert", "--arch", ARCH, "--steps", "3", "--batch-size", "16",
                         "--out", tmp_path / "scratch", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert set(result["metrics"]) == {"dev", "test"}
    assert result["params"] > 0 and result["macs"] > 0
    assert json.loads((tmp_path / "scratch/result.json").read_text())["arch"] == ARCH
    code, out, err = cli("retrain", "bert", "--arch", ARCH, "--steps", "1", "--batch-size", "16",
                         "--init-from", bert_run, "--out", tmp_path / "tuned", "--json")
    assert code == 0, err
    assert json.loads(out)["init_from"] == str(bert_run)


def test_retrain_init_from_other_space_is_usage_error(cli, bert_run, tmp_path):
    code, _, err = cli("retrain", "mobilenetv2", "--arch", "mobilenetv2", "--init-from", bert_run,
                       "--out", tmp_path / "x")
    assert code == 2 and "is a 'bert' super-net" in err


def test_export_runs_without_this_package(cli, bert_run, tmp_path):
    out = tmp_path / "exported"
    code, _, err = cli("export", bert_run, "--arch", ARCH, "--out", out)
    assert code == 0, err
    info = json.loads((out / "arch.json").read_text())
    assert info["arch"] == ARCH and (out / "model.pt2").exists() and (out / "model.safetensors").exists()
    ev = SupernetEvaluator(bert_run, use_cache=False)
    batch = ev.batches()[0]
    expected = ev.child(ARCH)(batch["input"][:3], attention_mask=batch["attention_mask"][:3],
                              token_type_ids=batch["token_type_ids"][:3])
    torch.save({k: batch[k][:3] for k in ("input", "attention_mask", "token_type_ids")}, tmp_path / "x.pt")
    script = (
        "import sys, torch\n"
        f"m = torch.export.load({str(out / 'model.pt2')!r}).module()\n"
        f"b = torch.load({str(tmp_path / 'x.pt')!r}, weights_only=True)\n"
        "y = m(b['input'], b['attention_mask'], b['token_type_ids'])\n"
        "assert not any(n == 'nas' or n.startswith(('nas.', 'spaces')) for n in sys.modules)\n"
        f"torch.save(y, {str(tmp_path / 'y.pt')!r})\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path)
    got = torch.load(tmp_path / "y.pt", weights_only=True)
    assert torch.allclose(got, expected, atol=1e-5)
    # Never overwrite an existing export.
    code, _, err = cli("export", bert_run, "--arch", ARCH, "--out", out)
    assert code == 2 and "not empty" in err


def test_bad_input(cli, bert_run, tmp_path):
    code, _, err = cli("evaluate", bert_run, "--arch", "mha2,ffn256")
    assert code == 2 and "8 slots" in err
    code, _, err = cli("evaluate", tmp_path, "--arch", ARCH)
    assert code == 2 and "is not a training run" in err
    code, _, err = cli("evaluate", bert_run, "--arch", ARCH, "--split", "holdout")
    assert code == 2 and "unknown split 'holdout'" in err
    with pytest.raises(NasUsageError, match="unknown task"):
        train(TrainConfig(space="bert", out=str(tmp_path / "t"), task="glue:nope", steps=1))


def test_export_mobilenetv2_for_timm(cli, mbv2_run, tmp_path):
    out = tmp_path / "mb"
    arch = "k5e3,skip,k3e6,skip,k7e6,k3e3,skip,skip,k5e6,k3e6,skip,k7e3,k3e6,skip,skip,k5e3"
    code, _, err = cli("export", mbv2_run, "--arch", arch, "--out", out, "--bn-recal-batches", 2)
    assert code == 0, err
    info = json.loads((out / "arch.json").read_text())
    assert {"timm_weights", "timm_config", "timm_loader"} <= set(info["files"])
    images = torch.randn(3, 3, 32, 32)
    torch.save(images, tmp_path / "x.pt")
    program = torch.export.load(str(out / "model.pt2")).module()
    expected = program(images)
    # timm alone (no magic-nas import) rebuilds the child from timm_config.json with load_timm.py.
    script = ((out / "load_timm.py").read_text() +
              f"y = model(torch.load({str(tmp_path / 'x.pt')!r}, weights_only=True))\n"
              "import sys\nassert not any(n == 'nas' or n.startswith(('nas.', 'spaces')) for n in sys.modules)\n"
              f"torch.save(y, {str(tmp_path / 'y.pt')!r})\n")
    subprocess.run([sys.executable, "-c", script], check=True, cwd=out)
    got = torch.load(tmp_path / "y.pt", weights_only=True)
    assert torch.allclose(got, expected, atol=1e-4)


def test_glue_train_evaluate_and_fine_tune_inherit_data_dir(cli, tmp_path):
    """GLUE end to end on a tiny SST-2 folder; --init-from reuses the super-net's --data-dir."""
    glue = tmp_path / "glue" / "SST-2"
    glue.mkdir(parents=True)
    words = ["good", "bad", "great", "awful", "fine", "poor", "nice", "dull"]
    for split, n in (("train", 60), ("dev", 20)):
        rows = [f'the "{words[i % 8]}" film\t{int(i % 8 % 2 == 0)}' for i in range(n)]
        (glue / f"{split}.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    run = tmp_path / "sst2"
    code, _, err = cli("train", "bert", "--task", "glue:sst2", "--data-dir", tmp_path / "glue",
                       "--steps", 2, "--batch-size", 8, "--out", run)
    assert code == 0, err
    code, out, err = cli("evaluate", run, "--arch", "bert-base", "--json")
    assert code == 0, err and "accuracy" in json.loads(out)["metrics"]
    code, out, err = cli("retrain", "bert", "--arch", "bert-base", "--steps", 1, "--batch-size", 8,
                         "--init-from", run, "--out", tmp_path / "ft", "--json")
    assert code == 0, err
    assert json.loads(out)["task"] == "glue:sst2"


def test_atomic_writes_keep_the_umask_permissions(tmp_path):
    import os
    import stat

    from nas._rundir import atomic_write_json

    import torch

    from nas.report import figure, save
    from nas.train._weights import save_weights

    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "x.json", {"a": 1})
        save_weights(torch.nn.Linear(2, 2), tmp_path / "w.safetensors")  # safetensors alone writes 0600
        fig, _ = figure(2, 2)
        save(fig, tmp_path / "p.png")
    finally:
        os.umask(old)
    for name in ("x.json", "w.safetensors", "p.png"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
