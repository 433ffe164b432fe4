"""The package layout: every module imports on its own (no import cycles), the CLI is a leaf,
and ``nas --help`` stays fast (no torch)."""

from __future__ import annotations

import ast
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import nas

ROOT = Path(nas.__file__).resolve().parent


def _modules() -> list[str]:
    """Every module of the package, the built-in plugins (installed as nas.spaces, nas.searchers and
    nas.estimators from the top-level folders) included."""
    import nas.estimators
    import nas.searchers
    import nas.spaces

    names = ["nas", "nas.spaces", "nas.searchers", "nas.estimators"]
    for package in (nas, nas.spaces, nas.searchers, nas.estimators):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            names.append(info.name)
    return sorted(set(names))


def test_walk_finds_every_stage():
    names = set(_modules())
    for package in ("nas.supernet", "nas.spaces", "nas.tasks", "nas.train", "nas.evaluate", "nas.searching",
                    "nas.searchers", "nas.estimators", "nas.child", "nas.analysis", "nas.report", "nas.cli"):
        assert package in names


@pytest.mark.slow
def test_every_module_imports_alone_in_a_fresh_interpreter():
    """One interpreter per module: an import cycle shows as an ImportError for whichever module of
    the cycle is imported first, so importing each alone finds every cycle."""
    from concurrent.futures import ThreadPoolExecutor

    env = {**os.environ, "PYTHONWARNINGS": "ignore"}

    def load(name: str) -> str | None:
        proc = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True,
                              env=env, timeout=600)
        return None if proc.returncode == 0 else f"{name}: {proc.stderr.strip().splitlines()[-1:]}"

    with ThreadPoolExecutor(4) as pool:
        failed = [f for f in pool.map(load, _modules()) if f]
    assert not failed, failed


def _imports(path: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved)."""
    rel = path.relative_to(ROOT.parent).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            out.add(module)
            out.update(f"{module}.{a.name}" for a in node.names)
    return out


def test_nothing_outside_the_cli_imports_it():
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        if "cli" in path.relative_to(ROOT).parts[:1] or path.name == "__main__.py":
            continue
        if any(m == "nas.cli" or m.startswith("nas.cli.") for m in _imports(path)):
            offenders.append(str(path.relative_to(ROOT.parent)))
    assert not offenders, f"modules outside nas/cli/ import the CLI: {offenders}"


def test_plugins_and_benchmarks_import_only_public_names():
    repo = ROOT.parent
    offenders = []
    for folder in ("spaces", "searchers", "estimators", "benchmarks", "docs/examples"):
        own = f"nas.{folder}."  # a plugin folder may share private helpers among its own modules
        for path in sorted((repo / folder).rglob("*.py")):
            for module in _imports(path):
                parts = module.split(".")
                if module.startswith(own):
                    continue
                if parts[0] == "nas" and any(p.startswith("_") and p != "__init__" for p in parts[1:]):
                    offenders.append(f"{path.relative_to(repo)}: {module}")
    assert not offenders, offenders


def test_help_does_not_import_torch():
    code = "import sys\nfrom nas.cli import app\nassert 'torch' not in sys.modules, 'torch'\n" \
           "assert 'nas.spaces' not in sys.modules, 'plugins'\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
