"""Resuming never unpickles arbitrary objects: a planted payload in a checkpoint runs nothing."""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import torch

MARKER_NAME = "payload-ran"


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: the file appears if the pickle is obeyed."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _model_file(run: Path) -> Path:
    tag = json.loads((run / "checkpoints" / "latest.json").read_text())["tag"]
    return next((run / "checkpoints" / tag).glob("mp_rank_*_model_states.pt"))


def test_planted_payload_is_refused_and_nothing_runs(cli, tmp_path):
    run = tmp_path / "run"
    code, _, err = cli("train", "bert", "--out", run, "--steps", "2", "--save-every", "2",
                       "--batch-size", "16", "--anchor-batches", "1", "--mode", "magic-at")
    assert code == 0, err
    model_file = _model_file(run)
    # What we save (DeepSpeed's state and our client state: sampler, anchor, RNG) is plain data.
    state = torch.load(model_file, weights_only=True)
    assert state["step"] == 2 and state["anchor"] is not None and isinstance(state["python_rng"], list)

    marker = tmp_path / MARKER_NAME
    state["client_extra"] = _Payload(marker)
    torch.save(state, model_file)
    before = model_file.read_bytes()
    code, _, err = cli("train", "bert", "--out", run, "--resume", "--steps", "4")
    assert not marker.exists(), "the checkpoint's pickle ran code"
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(model_file) in lines[0] and "refusing to load" in lines[0], err
    assert "io.open" in lines[0]  # the global the pickle names
    assert model_file.read_bytes() == before  # nothing rewritten
    assert json.loads((run / "config.json").read_text())["train"]["steps"] == 2  # not extended


def test_deepspeed_zero_types_load_under_the_allow_list(tmp_path):
    """ZeRO 1/2 and fp16/bf16 files hold a loss scaler, a stage enum and slice addresses: those
    (and only those) are allowed besides tensors and plain data."""
    import deepspeed.runtime.fp16.loss_scaler as ls
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    from nas.train._safe_load import weights_only_loads

    scaler = ls.DynamicLossScaler(init_scale=2**16, scale_window=1000, min_scale=1, delayed_shift=2,
                                  consecutive_hysteresis=False, dtype=torch.float16)
    state = {"loss_scaler": scaler, "static": ls.LossScaler(1.0), "zero_stage": ZeroStageEnum.gradients,
             "param_slice_mappings": [OrderedDict(w=fragment_address(numel=3, start=4))],
             "fp32": [torch.ones(3)], "dtype": torch.bfloat16, "shapes": [OrderedDict(w=torch.Size([3]))]}
    path = tmp_path / "zero_pp_rank_0_mp_rank_00_optim_states.pt"
    torch.save(state, path)
    with weights_only_loads():
        got = torch.load(path, weights_only=False)  # DeepSpeed's call: forced to weights_only
    assert got["loss_scaler"].cur_scale == 2**16 and got["zero_stage"] == ZeroStageEnum.gradients
    assert got["param_slice_mappings"][0]["w"] == fragment_address(numel=3, start=4)
    assert torch.load is torch.serialization.load  # restored afterwards


def test_weights_only_loads_refuses_and_restores(tmp_path):
    import pytest

    from nas import NasUsageError
    from nas.train._safe_load import weights_only_loads

    marker = tmp_path / MARKER_NAME
    path = tmp_path / "x.pt"
    torch.save({"x": _Payload(marker)}, path)
    with pytest.raises(NasUsageError, match=f"refusing to load checkpoint file {path}"):
        with weights_only_loads():
            torch.load(path, map_location="cpu", weights_only=False)
    assert not marker.exists()
    assert torch.load is torch.serialization.load


def test_zero_checkpoint_resumes_under_weights_only(tmp_path):
    """A ZeRO-2 checkpoint (its optimizer file holds DeepSpeed's loss scaler) resumes."""
    import copy

    from nas.train import DEFAULT_DS_CONFIG, TrainConfig, train

    ds = copy.deepcopy(DEFAULT_DS_CONFIG)
    ds["zero_optimization"] = {"stage": 2}
    (tmp_path / "zero2.json").write_text(json.dumps(ds))
    common = dict(space="bert", batch_size=16, anchor_batches=1, eval_batch_size=64, save_every=2,
                  ds_config=str(tmp_path / "zero2.json"))
    train(TrainConfig(out=str(tmp_path / "r"), steps=2, **common), show_progress=False)
    optim_file = next((tmp_path / "r" / "checkpoints").glob("step*/zero_pp_rank_0_*optim_states.pt"))
    assert "LossScaler" in str(optim_file.read_bytes()[:100000])  # not plain data: needs the allow-list
    summary = train(TrainConfig(out=str(tmp_path / "r"), steps=3, **common), resume=True, show_progress=False)
    assert summary["steps"] == 3
