import json
import textwrap

import pytest

import nas
from nas import NasUsageError, Registry, SearchSpace, Slot


def test_register_and_get():
    reg = Registry("widget", "nas.test-widgets")

    @reg.register("alpha")
    class Alpha:
        pass

    assert reg.get("alpha") is Alpha
    assert reg.names() == ["alpha"]
    assert "alpha" in reg


def test_duplicate_name_rejected_with_clear_error():
    reg = Registry("widget", "nas.test-widgets")

    @reg.register("alpha")
    class Alpha:
        pass

    with pytest.raises(ValueError, match="widget name 'alpha' is already registered"):

        @reg.register("alpha")
        class Other:
            pass


def test_unknown_name_lists_choices():
    reg = Registry("widget", "nas.test-widgets")
    reg.add("one", object)
    with pytest.raises(NasUsageError, match="unknown widget 'two'; choose from: one"):
        reg.get("two")


def test_builtin_spaces_registered():
    assert {"bert", "mobilenetv2"} <= set(nas.list_spaces())


PLUGIN = """
import torch
from torch import nn
from nas import SearchSpace, Slot, Choice


class PluginNet(nn.Module):
    def __init__(self, only):
        super().__init__()
        self.num_outputs, self.head_type = 2, "classification"
        self.layer = Choice({o: nn.Linear(4, 4) for o in ("a", "b") if only is None or o == only[0]})
        self.head = nn.Linear(4, 2)

    def forward(self, x, arch, return_hidden=False):
        h = self.layer(x, arch[0])
        return (self.head(h), [h]) if return_hidden else self.head(h)


class PluginSpace(SearchSpace):
    "A space that lives outside the repository."

    presets = {"tiny": None}

    def __init__(self, preset="tiny"):
        self.name = "plugin-space"
        self.preset, self.config = preset, None
        self.slots = [Slot("layer", ("a", "b"))]
        self._cost_cache = {}

    def _build(self, only, num_outputs, head):
        return PluginNet(only)

    def example_input(self, batch_size=1):
        return (torch.zeros(batch_size, 4),), {}
"""


def _install_fake_distribution(root, group, name, target):
    (root / "nas_test_plugin.py").write_text(textwrap.dedent(PLUGIN))
    dist = root / "nas_test_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: nas-test-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{group}]\n{name} = {target}\n")


def test_entry_point_plugin_space_is_listed_and_usable(plugin_path, cli):
    _install_fake_distribution(plugin_path, "nas.spaces", "plugin-space", "nas_test_plugin:PluginSpace")
    nas.SPACES.discover(force=True)
    assert "plugin-space" in nas.list_spaces()
    space = nas.get_space("plugin-space")
    import random

    arch = space.sample(random.Random(0))
    net = space.build_supernet()
    child = space.child(net, arch)
    import torch

    x = torch.randn(3, 4)
    assert torch.allclose(child(x), net(x, arch=arch))
    code, out, _ = cli("spaces", "--json")
    assert code == 0
    assert "plugin-space" in [row["name"] for row in json.loads(out)]
