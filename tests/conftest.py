import os
import sys

import pytest

# Tests never touch the network: fail fast instead of waiting on the Hugging Face Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


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
