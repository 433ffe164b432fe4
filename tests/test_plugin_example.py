"""The worked plugin example of docs/design.md, installed the way pip would install it."""

import configparser
import json
import random
import shutil
try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib
from pathlib import Path

import pytest
import torch

import nas

EXAMPLE = Path(__file__).parents[1] / "docs" / "examples" / "nas-plugin-example"


@pytest.fixture
def installed_example(plugin_path):
    """Copy the package and write its dist-info entry points from its pyproject.toml."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    shutil.copytree(EXAMPLE / "nas_plugin_example", plugin_path / "nas_plugin_example")
    dist = plugin_path / "nas_plugin_example-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: 0.1.0\n")
    eps = configparser.ConfigParser()
    for group, entries in project["entry-points"].items():
        eps[group] = entries
    with (dist / "entry_points.txt").open("w") as f:
        eps.write(f)
    nas.SPACES.discover(force=True)
    nas.SEARCHERS.discover(force=True)
    yield
    import sys

    for name in list(sys.modules):
        if name.startswith("nas_plugin_example"):
            del sys.modules[name]


def test_plugin_space_and_searcher_are_listed_and_work(installed_example, cli):
    code, out, _ = cli("spaces", "--json")
    assert "mlp" in [r["name"] for r in json.loads(out)]
    code, out, _ = cli("searchers", "--json")
    assert "hill-climb" in [r["name"] for r in json.loads(out)]
    code, out, err = cli("space", "show", "mlp", "--arch", "w128-gelu,skip,w32-relu", "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["size"] == 125 and info["macs"] == 64 * 64 + 2 * 64 * 128 + 2 * 64 * 32 + 64 * 10

    space = nas.get_space("mlp")
    net = space.build_supernet()
    x = torch.randn(4, 64)
    for arch in [space.sample(random.Random(i)) for i in range(5)]:
        assert torch.allclose(space.child(net, arch)(x), net(x, arch=arch), atol=1e-6)


def test_plugin_searcher_drives_a_search(installed_example, tmp_path):
    from nas.searching import search

    space = nas.get_space("mlp")

    class Evaluator:  # score: how many layers are wide
        primary_metric, greater_is_better = "accuracy", True

        def __init__(self):
            self.space = space

        def evaluate(self, arch):
            return {"accuracy": sum(t.startswith("w128") for t in space.parse(arch)) / 3}

    result = search(Evaluator(), "hill-climb", budget=25, seed=0, out=tmp_path / "s",
                    options={"warmup": 3})
    assert len(result.records) == 25
    assert result.best["score"] == 1.0
