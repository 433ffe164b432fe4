"""Super-net training on DeepSpeed: the four modes, run-dir contents, resume, bad input."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nas import NasUsageError, get_space
from nas.train import TrainConfig, load_state, train
from nas.train._anchor import Anchor, align_weight

FAST = dict(batch_size=16, anchor_batches=1, eval_batch_size=64)


def _rows(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("mode", ["uniform", "magic-t", "magic-a", "magic-at"])
def test_modes_train_bert(tmp_path, mode):
    cfg = TrainConfig(space="bert", out=str(tmp_path / mode), mode=mode, steps=12, seed=3,
                      anchor_every=3, align_warmup=2, align_ramp=0, save_every=6, **FAST)
    summary = train(cfg, show_progress=False)
    assert summary["steps"] == 12
    rows = _rows(tmp_path / mode)
    assert [r["step"] for r in rows] == list(range(1, 13))
    for key in ("step", "time", "loss", "arch", "lr", "world_size"):
        assert key in rows[0]
    space = get_space("bert")
    archs = [space.parse(r["arch"]) for r in rows]
    gaps = [space.distance(a, b) for a, b in zip(archs, archs[1:])]
    if mode in ("magic-t", "magic-at"):
        assert gaps == [1] * 11  # gradual modification: exactly one slot per step
    else:
        assert max(gaps) > 1
    if mode in ("magic-a", "magic-at"):
        assert all("anchor" in r and "align_loss" in r for r in rows)
        assert rows[-1]["anchor"] is not None
        assert any(r["align_loss"] > 0 for r in rows[3:])  # alignment on after warm-up
        assert sum("anchor_dev" in r for r in rows) == 4  # compared every 3 steps
    else:
        assert "anchor" not in rows[0]
    config = json.loads((tmp_path / mode / "config.json").read_text())
    assert config["mode"] == mode and config["train"]["seed"] == 3
    assert "torch" in config["versions"] and "deepspeed" in config["versions"]
    assert config["deepspeed"]["optimizer"]["params"]["lr"] == 5e-4  # bert's measured default
    weights = load_state(tmp_path / mode / "supernet.safetensors")
    assert any(".ops.conv7." in k for k in weights)  # the whole super-net is saved


@pytest.mark.parametrize("mode", ["uniform", "magic-at"])
def test_mobilenetv2_on_digits(tmp_path, mode):
    cfg = TrainConfig(space="mobilenetv2", out=str(tmp_path / "m"), mode=mode, steps=6, seed=0,
                      anchor_every=2, align_warmup=1, align_ramp=0, batch_size=32, anchor_batches=1,
                      eval_batch_size=128, lr=0.003)
    train(cfg, show_progress=False)
    rows = _rows(tmp_path / "m")
    assert len(rows) == 6 and all(r["loss"] == r["loss"] for r in rows)  # no NaN
    if mode == "magic-at":
        space = get_space("mobilenetv2")
        archs = [space.parse(r["arch"]) for r in rows]
        assert all(space.distance(a, b) == 1 for a, b in zip(archs, archs[1:]))
        assert rows[-1]["anchor"] is not None


def test_standalone_child_learns_digits(tmp_path):
    cfg = TrainConfig(space="mobilenetv2", out=str(tmp_path / "c"), mode="fixed", arch="mobilenetv2",
                      steps=60, seed=0, batch_size=64, lr=0.003)
    train(cfg, show_progress=False)
    rows = _rows(tmp_path / "c")
    first = sum(r["task_loss"] for r in rows[:10]) / 10
    last = sum(r["task_loss"] for r in rows[-10:]) / 10
    assert last < first - 0.3  # digits is learnable by a child in 60 steps


def test_unused_options_do_not_move(tmp_path):
    """AdamW must leave options the step's child did not use untouched (no zero-grad updates)."""
    cfg = TrainConfig(space="bert", out=str(tmp_path / "r"), mode="uniform", steps=3, seed=0, **FAST)
    from nas.train import Trainer

    trainer = Trainer(cfg, show_progress=False)
    before = {k: v.clone() for k, v in trainer.engine.module.state_dict().items()}
    arch = trainer.space.parse("mha2,ffn128,mha2,ffn128,mha2,ffn128,mha2,ffn128")
    trainer.sampler.next = lambda: arch
    trainer.run()
    after = trainer.engine.module.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(".ops.mha2." in k for k in changed)
    assert not any(".ops.conv3." in k or ".ops.mha4." in k or ".ops.ffn256." in k for k in changed)


def test_resume_is_exact(tmp_path, interrupted_train):
    common = dict(space="bert", mode="magic-at", steps=10, seed=1, anchor_every=2, align_warmup=2,
                  save_every=4, **FAST)
    train(TrainConfig(out=str(tmp_path / "straight"), **common), show_progress=False)
    interrupted_train(TrainConfig(out=str(tmp_path / "split"), **common), at_step=6)
    assert json.loads((tmp_path / "split/checkpoints/latest.json").read_text())["step"] == 4
    train(TrainConfig(out=str(tmp_path / "split"), **common), resume=True, show_progress=False)

    a, b = _rows(tmp_path / "straight"), _rows(tmp_path / "split")
    assert [r["arch"] for r in a] == [r["arch"] for r in b]
    assert [r["anchor"] for r in a] == [r["anchor"] for r in b]
    assert [r["step"] for r in b] == list(range(1, 11))
    wa = load_state(tmp_path / "straight/supernet.safetensors")
    wb = load_state(tmp_path / "split/supernet.safetensors")
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-5


def test_resume_after_kill_9(tmp_path):
    out = tmp_path / "killed"
    args = [sys.executable, "-m", "nas", "train", "bert", "--out", str(out), "--steps", "400",
            "--save-every", "3", "--batch-size", "16", "--seed", "2", "--mode", "magic-t"]
    log = tmp_path / "stderr.txt"
    # A fresh single process: not the rank variables (and port) this pytest process already uses.
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    with log.open("w") as err:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err, env=env)
    latest = out / "checkpoints" / "latest.json"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if latest.exists() and json.loads(latest.read_text())["step"] >= 6:
            break
        time.sleep(0.2)
    exited = proc.poll()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert exited is None, f"training exited early ({exited}): {log.read_text()[-2000:]}"
    step = json.loads(latest.read_text())["step"]
    assert 6 <= step < 400
    cfg = TrainConfig(space="bert", out=str(out), steps=400)
    # Resume only a few more steps: shorten the stored run to keep the test quick.
    stored = json.loads((out / "config.json").read_text())
    assert stored["train"]["steps"] == 400
    from nas.train import Trainer

    trainer = Trainer(cfg, resume=True, show_progress=False)
    assert trainer.step == step
    rows = _rows(out)
    assert rows[-1]["step"] == step  # rows after the checkpoint were dropped
    # The sampler continues the same walk: the next child is one slot away from the last.
    nxt = trainer.sampler.next()
    assert trainer.space.distance(nxt, trainer.space.parse(rows[-1]["arch"])) == 1


def test_existing_run_dir_is_not_overwritten(tmp_path):
    out = tmp_path / "r"
    train(TrainConfig(space="bert", out=str(out), steps=2, **FAST), show_progress=False)
    before = (out / "metrics.jsonl").read_text()
    with pytest.raises(NasUsageError, match="already holds a run; pass --resume"):
        train(TrainConfig(space="bert", out=str(out), steps=2, **FAST), show_progress=False)
    with pytest.raises(NasUsageError, match="holds a run of space 'bert'"):
        train(TrainConfig(space="mobilenetv2", out=str(out), steps=2), resume=True, show_progress=False)
    assert (out / "metrics.jsonl").read_text() == before


def test_corrupt_checkpoint_is_a_usage_error(tmp_path):
    out = tmp_path / "r"
    train(TrainConfig(space="bert", out=str(out), steps=2, save_every=2, **FAST), show_progress=False)
    tag = json.loads((out / "checkpoints/latest.json").read_text())["tag"]
    model_file = next((out / "checkpoints" / tag).glob("mp_rank_*_model_states.pt"))
    model_file.write_bytes(model_file.read_bytes()[:100])
    with pytest.raises(NasUsageError, match="corrupt"):
        train(TrainConfig(space="bert", out=str(out), steps=4), resume=True, show_progress=False)


def test_cli_bad_mode_and_zero3(cli, tmp_path):
    code, _, err = cli("train", "bert", "--out", tmp_path / "x", "--mode", "magic-z")
    assert code == 2 and "unknown mode 'magic-z'" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()
    ds = tmp_path / "z3.json"
    ds.write_text(json.dumps({"train_batch_size": 8, "zero_optimization": {"stage": 3}}))
    code, _, err = cli("train", "bert", "--out", tmp_path / "y", "--ds-config", ds, "--steps", "1")
    assert code == 2 and "ZeRO stage 3 is unsafe" in err


def test_anchor_replacement_rule():
    anchor = Anchor(margin=0.01)
    assert anchor.maybe_replace(("a",), 0.5, float("-inf"))
    assert not anchor.maybe_replace(("b",), 0.505, 0.5)  # within the margin
    assert anchor.maybe_replace(("c",), 0.6, 0.5) and anchor.arch == ("c",)
    assert align_weight(5, 1.0, warmup=10, ramp=10) == 0.0
    assert align_weight(14, 1.0, warmup=10, ramp=10) == pytest.approx(0.5)
    assert align_weight(50, 1.0, warmup=10, ramp=10) == 1.0


def test_shipped_cpu_config_matches_default():
    from nas.train import DEFAULT_DS_CONFIG

    shipped = json.loads((Path(__file__).parents[1] / "ds_configs" / "cpu.json").read_text())
    assert shipped == DEFAULT_DS_CONFIG


def test_mlm_objective(tmp_path):
    from nas.train import Trainer

    cfg = TrainConfig(space="bert", out=str(tmp_path / "mlm"), mode="magic-a", objective="mlm", steps=6,
                      anchor_every=3, align_warmup=0, align_ramp=0, **FAST)
    trainer = Trainer(cfg, show_progress=False)
    vocab = trainer.space.config.vocab_size
    assert trainer.model.head_type == "mlm" and trainer.model.num_outputs == vocab
    batch = trainer._mask(trainer.dev_batches[0], 0)
    targets = batch["labels"] != -100
    assert 0 < targets.float().mean() < 0.3  # about 15% of the real tokens
    assert (batch["input"][targets] == vocab - 1).float().mean() > 0.6  # mostly [MASK]
    assert (batch["input"][:, 0] == trainer.dev_batches[0]["input"][:, 0]).all()  # [CLS] never masked
    trainer.run()
    rows = _rows(tmp_path / "mlm")
    assert len(rows) == 6 and all(r["loss"] > 0 for r in rows)
    score = trainer.dev_score(trainer.space.parse(rows[-1]["arch"]))
    assert 0.0 <= score <= 1.0  # masked-token accuracy


def test_resume_extends_and_refuses_changed_settings(cli, tmp_path, monkeypatch):
    """--resume with a larger --steps extends the run (the cosine is rebuilt for the new total,
    the step counter continues); a changed --mode/--lr is refused naming the stored value; a
    resume with nothing left to do keeps train_summary's final row."""
    run, straight = tmp_path / "run", tmp_path / "straight"
    base = ["train", "bert", "--batch-size", "16", "--anchor-batches", "1", "--seed", "4"]
    assert cli(*base, "--out", run, "--steps", "2", "--save-every", "2")[0] == 0
    assert cli(*base, "--out", straight, "--steps", "4", "--save-every", "2")[0] == 0
    code, _, err = cli("train", "bert", "--out", run, "--resume", "--steps", "4")
    assert code == 0, err
    rows, ref = _rows(run), _rows(straight)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert [r["lr"] for r in rows[2:]] == pytest.approx([r["lr"] for r in ref[2:]])  # 4-step cosine
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["steps"] == 4 and config["extended"] == [{"from_steps": 2, "to_steps": 4}]
    for argv, fragment in (
        (["--mode", "magic-t"], "was trained with --mode uniform, not with --mode magic-t"),
        (["--lr", "0.01"], "was trained without --lr, not with --lr 0.01"),
        (["--seed", "5"], "was trained with --seed 4, not with --seed 5"),
        (["--steps", "3"], "--steps 3 would shorten it"),
    ):
        code, _, err = cli("train", "bert", "--out", run, "--resume", *argv)
        assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1, err
    assert json.loads((run / "config.json").read_text()) == config  # refusals change nothing

    from nas.train import _loop

    shown = []

    class Bar:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def add_task(self, *args, **fields):
            shown.append(fields["loss_text"])

        def update(self, *args, **fields):
            shown.append(fields["loss_text"])

    monkeypatch.setattr(_loop, "_progress", lambda enabled: Bar())
    final = json.loads((run / "train_summary.json").read_text())["final"]
    code, _, err = cli("train", "bert", "--out", run, "--resume", "--seed", "4", "--save-every", "1")
    assert code == 0, err
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["final"] == final and summary["final"]["step"] == 4
    assert summary["device"] == "cpu"  # the device that finished the run (config.json: where it started)
    assert shown == [f"loss {final['loss']:.4f}"]  # not "loss nan"
    assert len(_rows(run)) == 4


def test_resume_refuses_an_edited_ds_config_file(cli, tmp_path):
    """The DeepSpeed config file is read again on resume: an edit that changes how the run trains
    (optimizer, precision, clipping) is refused in one line; the same file extends the run."""
    ds = json.loads((Path(__file__).parents[1] / "ds_configs" / "cpu.json").read_text())
    path = tmp_path / "ds.json"
    path.write_text(json.dumps(ds))
    run = tmp_path / "run"
    base = ["train", "bert", "--batch-size", "16", "--anchor-batches", "1", "--ds-config", path, "--out", run]
    assert cli(*base, "--steps", "2", "--save-every", "2")[0] == 0
    config = (run / "config.json").read_text()
    for edit, key in ((lambda d: d["optimizer"]["params"].update(weight_decay=0.5), "optimizer"),
                      (lambda d: d.update(gradient_clipping=0.25), "gradient_clipping"),
                      (lambda d: d.update(bf16={"enabled": True}), "bf16")):
        changed = json.loads(json.dumps(ds))
        edit(changed)
        path.write_text(json.dumps(changed))
        code, out, err = cli(*base, "--resume", "--steps", "4")
        assert code == 2 and f"was trained with DeepSpeed {key} " in err, (out, err)
        assert str(path) in err and len(err.strip().splitlines()) == 1
        assert (run / "config.json").read_text() == config and len(_rows(run)) == 2  # nothing changed
    path.write_text(json.dumps(ds))
    code, _, err = cli(*base, "--resume", "--steps", "4")  # a longer schedule is no edit
    assert code == 0, err
    assert [r["step"] for r in _rows(run)] == [1, 2, 3, 4]


def test_run_from_defaults_resumes_with_its_recorded_optimizer(cli, tmp_path):
    """A newer default (bert's lr) does not change a run trained from the defaults midway: it
    resumes with the optimizer its config.json recorded."""
    run = tmp_path / "run"
    base = ["train", "bert", "--batch-size", "16", "--anchor-batches", "1", "--out", run]
    assert cli(*base, "--steps", "2", "--save-every", "2")[0] == 0
    config = json.loads((run / "config.json").read_text())
    config["deepspeed"]["optimizer"]["params"]["lr"] = 0.002  # as recorded by an older version
    (run / "config.json").write_text(json.dumps(config))
    code, _, err = cli("train", "bert", "--out", run, "--resume", "--steps", "4")
    assert code == 0, err
    lrs = [r["lr"] for r in _rows(run)]
    assert max(lrs[2:]) > 0.0005  # the recorded 0.002 schedule, not the new 0.0005 default
    assert json.loads((run / "config.json").read_text())["deepspeed"]["optimizer"]["params"]["lr"] == 0.002


def test_resume_continues_monitor_csvs(tmp_path, interrupted_train):
    """After a crash and resume, each monitor CSV has one header and each step once."""
    common = dict(space="bert", steps=4, seed=1, save_every=2, **FAST)
    interrupted_train(TrainConfig(out=str(tmp_path / "r"), **common), at_step=3)
    train(TrainConfig(out=str(tmp_path / "r"), **common), resume=True, show_progress=False)
    files = sorted((tmp_path / "r" / "monitor" / "train").glob("*.csv"))
    assert any(f.name == "Train_loss.csv" for f in files)
    for f in files:
        lines = f.read_text().splitlines()
        assert lines[0].startswith("step,") and sum(line.startswith("step,") for line in lines) == 1
        assert [int(line.split(",")[0]) for line in lines[1:]] == [1, 2, 3, 4], f.name
    assert [r["step"] for r in _rows(tmp_path / "r")] == [1, 2, 3, 4]


def test_cpu_terminal_is_quiet(tmp_path):
    """No CUDA, op-build or scheduler notices on a CPU run, and no "[rank0]:" before tracebacks
    of one process (``nas --verbose`` / NAS_VERBOSE=1 shows them)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "NAS_VERBOSE",
                        "NAS_DEEPSPEED_LOG")}
    proc = subprocess.run(
        [sys.executable, "-m", "nas", "train", "bert", "--steps", "1", "--batch-size", "16",
         "--anchor-batches", "1", "--out", str(tmp_path / "r")],
        capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    for noise in ("No CUDA runtime", "built successfully", "[WARNING]", "Attempting to get learning rate"):
        assert noise not in proc.stderr, proc.stderr
    crash = subprocess.run(
        [sys.executable, "-c", "from nas import _distributed as d; d.init(); raise RuntimeError('boom')"],
        capture_output=True, text=True, env=env, timeout=600)
    assert "RuntimeError: boom" in crash.stderr and "[rank0]" not in crash.stderr, crash.stderr


def test_eval_batches_leave_no_rank_without_data():
    # With fewer dev batches than ranks (e.g. --anchor-batches 1 on 2 ranks) every rank still gets
    # its share; with enough batches ranks take whole batches, as one process would see them.
    from torch.utils.data import default_collate

    from nas.train._data import eval_batches

    data = [{"x": torch.tensor(i)} for i in range(10)]
    shares = [eval_batches(data, default_collate, 4, limit=1, rank=r, world=2) for r in (0, 1)]
    assert [b["x"].tolist() for s in shares for b in s] == [[0, 2], [1, 3]]
    whole = [eval_batches(data, default_collate, 4, rank=r, world=2) for r in (0, 1)]
    assert [[b["x"].tolist() for b in s] for s in whole] == [[[0, 1, 2, 3], [8, 9]], [[4, 5, 6, 7]]]
