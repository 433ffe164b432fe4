"""The SearchSpace base class on a toy space: arch algebra, weight inheritance and cost."""

import random
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from nas import Choice, NasUsageError, SearchSpace, Slot


@dataclass(frozen=True)
class ToyPreset:
    width: int = 8


class ToyNet(nn.Module):
    def __init__(self, width, only, num_outputs):
        super().__init__()
        self.num_outputs, self.head_type = num_outputs or 3, "classification"
        options = {"lin": lambda: nn.Linear(width, width), "wide": lambda: nn.Sequential(
            nn.Linear(width, 2 * width), nn.ReLU(), nn.Linear(2 * width, width)), "id": nn.Identity}
        self.layers = nn.ModuleList(
            Choice({k: f() for k, f in options.items() if only is None or k == only[i]})
            for i in range(3)
        )
        self.head = nn.Linear(width, self.num_outputs)

    def forward(self, x, arch, return_hidden=False):
        for layer, token in zip(self.layers, arch):
            x = layer(x, token)
        return self.head(x)


class ToySpace(SearchSpace):
    name = "toy"
    presets = {"tiny": ToyPreset()}

    def _make_slots(self):
        return [Slot(f"l{i}", ("lin", "wide", "id")) for i in range(3)]

    def _build(self, only, num_outputs, head):
        return ToyNet(self.config.width, only, num_outputs)

    def example_input(self, batch_size=1):
        return (torch.zeros(batch_size, self.config.width),), {}


def test_size_sample_roundtrip_and_distance():
    space = ToySpace()
    assert space.size == 27
    rng = random.Random(0)
    for _ in range(50):
        arch = space.sample(rng)
        assert space.parse(space.encode(arch)) == arch
        assert space.distance(arch, arch) == 0
    assert space.distance(("lin", "lin", "id"), ("lin", "wide", "lin")) == 2


def test_mutate_changes_exactly_k_slots():
    space = ToySpace()
    rng = random.Random(1)
    for k in (1, 2, 3):
        for _ in range(20):
            arch = space.sample(rng)
            assert space.distance(arch, space.mutate(arch, rng, k=k)) == k
    with pytest.raises(ValueError):
        space.mutate(("lin",) * 3, rng, k=4)


@pytest.mark.parametrize(
    "text, message",
    [
        ("lin,lin", "has 2 token(s) but space 'toy'"),
        ("lin,lin,bogus", "slot 'l2' has no option 'bogus'; choose from: lin, wide, id"),
    ],
)
def test_bad_arch_is_a_usage_error(text, message):
    with pytest.raises(NasUsageError) as info:
        ToySpace().parse(text)
    assert message in str(info.value)


def test_unknown_preset_and_override():
    with pytest.raises(NasUsageError, match="unknown preset 'huge'.*choose from: tiny"):
        ToySpace("huge")
    with pytest.raises(NasUsageError, match="unknown option"):
        ToySpace(depth=3)
    assert ToySpace(width=4).config.width == 4


def test_child_inherits_weights_and_matches_supernet():
    space = ToySpace()
    net = space.build_supernet()
    rng = random.Random(2)
    x = torch.randn(5, 8)
    for _ in range(10):
        arch = space.sample(rng)
        child = space.child(net, arch)
        assert torch.allclose(child(x), net(x, arch=arch), atol=1e-6)
        assert sum(p.numel() for p in child.parameters()) < sum(p.numel() for p in net.parameters())
        # The child's weights are copies: changing them leaves the super-net alone.
        with torch.no_grad():
            next(child.parameters()).add_(1.0)
        assert not torch.allclose(child(x), net(x, arch=arch))


def test_cost_counts_params_and_macs():
    space = ToySpace()
    small = space.cost("id,id,id")
    big = space.cost("wide,wide,wide")
    assert small.params == 8 * 3 + 3 and small.backbone_params == 0
    assert small.macs == 8 * 3
    assert big.backbone_params == 3 * (8 * 16 + 16 + 16 * 8 + 8)
    assert big.macs == 3 * (8 * 16 + 16 * 8) + 8 * 3
