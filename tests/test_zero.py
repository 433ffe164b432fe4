"""Unused options stay untouched under every shipped ds_config (ZeRO 0/1/2, fp32/bf16, 1 and 2
ranks), the same run on any world size, the masked optimizers against torch's, bf16 on CPU."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nas import NasUsageError
from nas.train import TrainConfig, Trainer, load_state, resolve_ds_config, train
from nas.train._anchor import alignment_loss
from nas.train._optim import MaskedAdamW, MaskedSGD, build_optimizer, optimizer_spec

sys.path.insert(0, str(Path(__file__).parent))
from _zero_worker import WORLD_RUN, ds_config, watch_unused  # noqa: E402

ROOT = Path(__file__).parents[1]


def _grads(tensors, gen, zero_fraction=0.0):
    out = []
    for t in tensors:
        g = torch.randn(t.shape, generator=gen)
        g[g == 0] = 1e-3
        if zero_fraction:
            g[torch.rand(t.shape, generator=gen) < zero_fraction] = 0.0
        out.append(g)
    return out


@pytest.mark.parametrize("multi_tensor", [False, True])
@pytest.mark.parametrize("decoupled,weight_decay", [(True, 0.01), (True, 0.0), (False, 0.01)])
def test_masked_adamw_is_torch_adamw_when_every_grad_is_nonzero(decoupled, weight_decay, multi_tensor):
    gen = torch.Generator().manual_seed(0)
    ours = [torch.randn(s, generator=gen) for s in [(37, 13), (5,), (1000,)]]
    theirs = [t.clone() for t in ours]
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    ref = cls(theirs, lr=1e-3, betas=(0.9, 0.99), eps=1e-8, weight_decay=weight_decay, foreach=False)
    opt = MaskedAdamW(ours, lr=1e-3, betas=(0.9, 0.99), eps=1e-8, weight_decay=weight_decay,
                      decoupled=decoupled, multi_tensor=multi_tensor)
    for step in range(25):
        for o in (ref, opt):  # a schedule moves the lr every step
            o.param_groups[0]["lr"] = 1e-3 * (1 + step % 7) / 3
        for a, b, g in zip(ours, theirs, _grads(ours, gen)):
            a.grad, b.grad = g.clone(), g.clone()
        ref.step()
        opt.step()
        assert all(torch.equal(a, b) for a, b in zip(ours, theirs)), step  # bit for bit
    for a, b in zip(ours, theirs):
        assert torch.equal(opt.state[a]["exp_avg"], ref.state[b]["exp_avg"])
        assert torch.equal(opt.state[a]["exp_avg_sq"], ref.state[b]["exp_avg_sq"])


def test_multi_tensor_adamw_is_bit_identical_to_tensor_by_tensor(monkeypatch):
    """The multi-tensor step (concatenate, one masked update, copy back: the default on CUDA)
    equals the tensor-by-tensor one bit for bit: parameters with no grad, all-zero grads, partly
    zero grads, mixed dtypes and chunks split at a small size limit."""
    import nas.train._optim as optim

    monkeypatch.setattr(optim, "_CHUNK_ELEMENTS", 500)  # splits the list into several chunks
    gen = torch.Generator().manual_seed(3)
    shapes = [(40, 7), (5,), (300,), (11, 3), (900,), (2, 2)]
    dtypes = [torch.float32, torch.float32, torch.float64, torch.float64, torch.float32, torch.float32]
    initial = [torch.randn(s, generator=gen, dtype=d) for s, d in zip(shapes, dtypes)]
    runs = {}
    for multi in (False, True):
        params = [torch.nn.Parameter(t.clone()) for t in initial]
        opt = MaskedAdamW(params, lr=0.01, weight_decay=0.05, multi_tensor=multi)
        g2 = torch.Generator().manual_seed(4)
        for step in range(12):
            for i, p in enumerate(params):
                g = torch.randn(p.shape, generator=g2, dtype=p.dtype)
                g[torch.rand(p.shape, generator=g2) < 0.3] = 0.0
                if i == 1 and step % 3 == 0:
                    g.zero_()  # a whole tensor unused this step
                p.grad = None if (i == 3 and step % 2) else g  # no grad at all (dropped)
            opt.step()
        runs[multi] = (params, opt)
    (a, opt_a), (b, opt_b) = runs[False], runs[True]
    for p, q in zip(a, b):
        assert torch.equal(p, q)
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(opt_a.state[p][key], opt_b.state[q][key]), key
    assert list(optim._chunks(b)) != [b] and all(len({(p.dtype, p.device) for p in c}) == 1
                                                 for c in optim._chunks(b))


@pytest.mark.parametrize("nesterov,dampening", [(True, 0.0), (False, 0.0), (False, 0.2)])
def test_masked_sgd_is_torch_sgd_when_every_grad_is_nonzero(nesterov, dampening):
    gen = torch.Generator().manual_seed(1)
    ours = [torch.randn(57, 3, generator=gen)]
    theirs = [ours[0].clone()]
    ref = torch.optim.SGD(theirs, lr=0.05, momentum=0.9, dampening=dampening, nesterov=nesterov,
                          weight_decay=5e-4, foreach=False)
    opt = MaskedSGD(ours, lr=0.05, momentum=0.9, dampening=dampening, nesterov=nesterov,
                    weight_decay=5e-4)
    for _ in range(15):
        (g,) = _grads(ours, gen)
        ours[0].grad, theirs[0].grad = g.clone(), g.clone()
        ref.step()
        opt.step()
    assert torch.equal(ours[0], theirs[0])


@pytest.mark.parametrize("kind", ["adamw", "sgd"])
def test_zero_gradient_elements_are_bit_identical(kind):
    """Elements with an exactly-zero gradient: parameter, moments and step count never written;
    the others follow their own steps (per-element bias correction: lazy Adam)."""
    gen = torch.Generator().manual_seed(2)
    p = torch.nn.Parameter(torch.randn(300, generator=gen))
    initial = p.detach().clone()
    if kind == "adamw":
        opt = MaskedAdamW([p], lr=0.01, weight_decay=0.1)
    else:
        opt = MaskedSGD([p], lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)
    # Elements 0-99 train every step, 100-199 every other step, 200-299 from step 5 on only.
    grads = []
    for step in range(10):
        g = _grads([p], gen)[0]
        if step % 2:
            g[100:200] = 0
        if step < 5:
            g[200:] = 0
        grads.append(g)
        before = {"p": p.detach().clone(), **{k: v.clone() for k, v in opt.state[p].items()}}
        p.grad = g
        opt.step()
        skipped = g == 0
        assert torch.equal(p.detach()[skipped], before["p"][skipped])
        for key, value in opt.state[p].items():
            if key in before:
                assert torch.equal(value[skipped], before[key][skipped]), key
        assert not torch.equal(p.detach()[~skipped], before["p"][~skipped])
    if kind == "adamw":
        # Element 250 = plain AdamW run over just the 5 steps it trained, counted from 1.
        assert torch.equal(opt.state[p]["step"][[0, 150, 250]], torch.tensor([10.0, 5.0, 5.0]))
        q = torch.nn.Parameter(initial[250:251].clone())
        ref = torch.optim.AdamW([q], lr=0.01, weight_decay=0.1, foreach=False)
        for g in grads[5:]:
            q.grad = g[250:251].clone()
            ref.step()
        assert torch.allclose(q.detach(), p.detach()[250:251], rtol=0, atol=1e-7)


def test_optimizer_section_is_checked():
    kind, kwargs = optimizer_spec({"type": "Adam", "params": {"lr": 0.1, "torch_adam": True}})
    assert kind == "adamw" and kwargs["decoupled"]  # DeepSpeed's "Adam" is AdamW unless told not
    assert not optimizer_spec({"type": "Adam", "params": {"adam_w_mode": False}})[1]["decoupled"]
    assert isinstance(build_optimizer({"type": "sgd", "params": {"momentum": 0.9}},
                                      [torch.nn.Parameter(torch.ones(2))]), MaskedSGD)
    for bad, words in [
        (None, 'no "optimizer"'),
        ({"type": "Lamb", "params": {}}, "not supported"),
        ({"type": "AdamW", "params": {"amsgrad": True}}, "amsgrad"),
        ({"type": "AdamW", "params": {"lr": 0.1, "momentum": 0.9}}, "unknown"),
        ({"type": "SGD", "params": {"nesterov": True}}, "nesterov"),
        ({"type": "AdamW", "params": {"lr": "fast"}}, "number"),
    ]:
        with pytest.raises(NasUsageError, match=words):
            optimizer_spec(bad)
    # Checked where the run is validated, before anything is written.
    # (mobilenetv2: a space without its own optimizer default, which would replace this section)
    cfg = TrainConfig(space="mobilenetv2", out="unused", steps=10).resolve()
    with pytest.raises(NasUsageError, match="not supported"):
        resolve_ds_config({"train_batch_size": 8, "optimizer": {"type": "Lion"}}, cfg, 1)


@pytest.mark.parametrize("path", sorted(p.name for p in (ROOT / "ds_configs").glob("*.json")))
def test_shipped_ds_configs_resolve(path):
    cfg = TrainConfig(space="bert", out="unused", steps=100, ds_config=str(ROOT / "ds_configs" / path))
    shipped = json.loads((ROOT / "ds_configs" / path).read_text())
    if shipped.get("fp16", {}).get("enabled") and not _fp16_supported():
        with pytest.raises(NasUsageError, match="fp16 is not supported on this device"):
            resolve_ds_config(shipped, cfg.resolve(), 2)  # one line, not DeepSpeed's traceback
        shipped["fp16"]["enabled"] = False
    ds = resolve_ds_config(shipped, cfg.resolve(), 2)
    optimizer_spec(ds["optimizer"])
    assert ds["scheduler"]["params"]["total_num_steps"] == 100


def _fp16_supported():
    from deepspeed.accelerator import get_accelerator

    return get_accelerator().is_fp16_supported()


@pytest.mark.parametrize("shipped,bf16,stage", [
    ("gpu.json", True, None),  # bf16, ZeRO 0 (DeepSpeed's fp32-master wrapper)
    ("multi_gpu_zero1.json", False, None),  # fp32, ZeRO 1
    ("multi_gpu_zero2.json", True, None),  # bf16, ZeRO 2
])
def test_unused_options_untouched_one_rank(tmp_path, shipped, bf16, stage):
    cfg = TrainConfig(space="bert", out=str(tmp_path / "r"), mode="magic-at", steps=3, seed=4,
                      batch_size=16, anchor_every=1, align_warmup=1, align_ramp=0, anchor_batches=1,
                      eval_batch_size=64, save_every=3,
                      ds_config=ds_config(tmp_path, shipped, bf16=bf16, stage=stage, lr=0.01,
                                          weight_decay=0.1))
    trainer = Trainer(cfg, show_progress=False)
    assert type(trainer.engine.basic_optimizer).__name__ == "MaskedAdamW"
    if bf16:
        assert next(trainer.engine.module.parameters()).dtype == torch.bfloat16
    report = watch_unused(trainer)
    summary = trainer.run()
    assert report["steps"] == 3 and report["unused_checked"] > 100
    assert report["touched_unused"] == []
    assert report["moved_used"] > 50
    rows = [json.loads(x) for x in (tmp_path / "r/metrics.jsonl").read_text().splitlines()]
    assert all(r["loss"] == r["loss"] for r in rows)  # no NaN
    assert rows[1]["align_loss"] > 0  # MAGIC-A's alignment ran (in fp32)
    assert len({r["lr"] for r in rows}) == 3  # DeepSpeed's scheduler drives our optimizer
    assert summary["steps"] == 3


def test_zero2_resume_is_exact(tmp_path, interrupted_train):
    """Our optimizer's state (moments, per-element step counts) goes through DeepSpeed's ZeRO
    checkpoints: a run split by a crash ends with the straight run's weights, bit for bit."""
    common = dict(space="bert", mode="magic-t", steps=5, seed=1, batch_size=16, save_every=2,
                  anchor_batches=1, eval_batch_size=64, space_overrides={"dropout": 0.0},
                  ds_config=ds_config(tmp_path, "multi_gpu_zero2.json", bf16=False, weight_decay=0.1))
    train(TrainConfig(out=str(tmp_path / "straight"), **common), show_progress=False)
    interrupted_train(TrainConfig(out=str(tmp_path / "split"), **common), at_step=3)
    train(TrainConfig(out=str(tmp_path / "split"), **common), resume=True, show_progress=False)
    a = load_state(tmp_path / "straight/supernet.safetensors")
    b = load_state(tmp_path / "split/supernet.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_alignment_loss_is_float32():
    gen = torch.Generator().manual_seed(0)
    child, anchor = torch.randn(8, 5, generator=gen), torch.randn(8, 5, generator=gen)
    hid = [torch.randn(8, 3, 4, generator=gen)]
    for kind in ("logits", "hidden"):
        full = alignment_loss(kind, "classification", (child, hid), (anchor, [h + 1 for h in hid]))
        low = alignment_loss(kind, "classification", (child.bfloat16(), [h.bfloat16() for h in hid]),
                             (anchor.bfloat16(), [(h + 1).bfloat16() for h in hid]))
        assert low.dtype == torch.float32
        assert torch.allclose(low, full, rtol=0.02)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.launcher
def test_two_ranks_zero1_zero2_untouched_and_match_one_rank(tmp_path):
    """2 CPU ranks through the launcher: ZeRO 0 (fp32, the default config), ZeRO 1 (bf16) and
    ZeRO 2 (fp32) leave unused options bit-identical at every step, and the ZeRO 2 run equals the
    same run on 1 rank."""
    launcher = shutil.which("deepspeed", path=str(Path(sys.executable).parent)) or shutil.which("deepspeed")
    assert launcher, "the deepspeed launcher is installed with the package"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    out = tmp_path / "two"
    proc = subprocess.run(
        [launcher, "--num_gpus", "2", "--master_port", str(_free_port()),
         str(Path(__file__).parent / "_zero_worker.py"), str(out)],
        env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for run, steps, wrapper in (("zero0", 3, "MaskedAdamW"), ("zero1", 4, "DeepSpeedZeroOptimizer"),
                                ("zero2", 6, "DeepSpeedZeroOptimizer")):
        for rank in (0, 1):
            report = json.loads((out / run / f"untouched_rank{rank}.json").read_text())
            assert report["world"] == 2 and report["steps"] == steps, report
            assert report["optimizer"] == "MaskedAdamW", report
            assert report["wrapper"] == wrapper, report
            assert report["touched_unused"] == [], (run, report["touched_unused"][:5])
            assert report["unused_checked"] > 50 and report["moved_used"] > 20, report

    one = tmp_path / "one"
    train(TrainConfig(out=str(one / "run"), **WORLD_RUN,
                      ds_config=ds_config(one, "multi_gpu_zero2.json", bf16=False, weight_decay=0.1)),
          show_progress=False)
    rows2 = [json.loads(x) for x in (out / "zero2/metrics.jsonl").read_text().splitlines()]
    rows1 = [json.loads(x) for x in (one / "run/metrics.jsonl").read_text().splitlines()]
    assert [r["world_size"] for r in rows2] == [2] * WORLD_RUN["steps"]
    assert [r["arch"] for r in rows2] == [r["arch"] for r in rows1]  # the same children
    assert max(abs(a["loss"] - b["loss"]) for a, b in zip(rows1, rows2)) < 1e-5
    w2 = load_state(out / "zero2/supernet.safetensors")
    w1 = load_state(one / "run/supernet.safetensors")
    assert sorted(w1) == sorted(w2)
    assert max((w1[k] - w2[k]).abs().max().item() for k in w1) < 1e-5  # float tolerance
