import os
import sys

import pytest

# Tests never touch the network: fail fast instead of waiting on the Hugging Face Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# Tiny models on 2 cores: one thread per process avoids oversubscription (measured 100x slowdowns
# of small forwards with 2 threads on a busy machine); subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture
def cli(capsys):
    """Run ``nas ARGS...`` in-process; returns (exit_code, stdout, stderr)."""
    from nas.cli import main

    def run(*args: str):
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    """A folder on sys.path where tests write fake installed distributions (dist-info + module)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in list(sys.modules):
        if name.startswith("nas_test_plugin"):
            del sys.modules[name]


@pytest.fixture
def interrupted_train(monkeypatch):
    """``interrupted_train(cfg, at_step)``: train ``cfg`` until a KeyboardInterrupt stops it just
    before optimizer step ``at_step`` runs (as a crash would), leaving the run to resume."""
    from nas.train import _loop, train

    def run(cfg, at_step: int) -> None:
        original = _loop.Trainer.train_step

        def crash(self, arch, batches):
            if self.step == at_step:
                raise KeyboardInterrupt
            return original(self, arch, batches)

        monkeypatch.setattr(_loop.Trainer, "train_step", crash)
        with pytest.raises(KeyboardInterrupt):
            train(cfg, show_progress=False)
        monkeypatch.setattr(_loop.Trainer, "train_step", original)

    return run
