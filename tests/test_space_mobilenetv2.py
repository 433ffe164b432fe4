"""The mobilenetv2 space: slots, arch algebra, super-net/child equivalence, timm parity and export."""

import json
import math
import random

import pytest
import timm
import torch
from torch import nn

from nas import NasUsageError, get_space
from nas.spaces.mobilenetv2 import (
    MBCONV,
    load_timm_mobilenetv2,
    timm_arch_def,
    timm_model_kwargs,
    to_timm_model,
    to_timm_state_dict,
)
from timm.models.efficientnet import EfficientNet

REPEATS = (2, 3, 4, 3, 3, 1)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny convs gain nothing from 2 threads, and OpenMP threads on busy cores wait ~100x longer."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def space():
    return get_space("mobilenetv2", "tiny")


def randomise_batchnorm(module: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics and affine weights, so eval-mode comparisons mean something."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    return module


def test_slots_and_options(space):
    names = [s.name for s in space.slots]
    assert names == [f"s{s}b{b}" for s, n in enumerate(REPEATS, 1) for b in range(n)]
    for slot in space.slots:
        first = slot.name.endswith("b0")  # stride or width changes: no identity possible
        assert slot.options == MBCONV + (() if first else ("skip",))
    assert MBCONV == ("k3e3", "k3e6", "k5e3", "k5e6", "k7e3", "k7e6")
    assert space.size == 6**6 * 7**10
    assert space.has_batchnorm and space.default_task == "digits-small"


def test_parse_encode_round_trip_and_named_arch(space):
    rng = random.Random(0)
    for _ in range(10):
        arch = space.sample(rng)
        assert space.parse(space.encode(arch)) == arch
    assert space.parse("mobilenetv2") == ("k3e6",) * 16
    assert space.parse(" " + ", ".join(["k3e6"] * 16)) == ("k3e6",) * 16


@pytest.mark.parametrize("text, message", [
    (",".join(["k3e6"] * 15), "has 15 token"),
    (",".join(["k3e6"] * 17), "has 17 token"),
    (",".join(["k9e6"] + ["k3e6"] * 15), "slot 's1b0' has no option 'k9e6'"),
    (",".join(["skip"] + ["k3e6"] * 15), "slot 's1b0' has no option 'skip'"),
    (",".join(["k3e6"] * 2 + ["skip"] + ["k3e6"] * 13), "slot 's2b0' has no option 'skip'"),
    ("", "has 1 token"),
])
def test_malformed_archs_rejected(space, text, message):
    with pytest.raises(NasUsageError, match=message):
        space.parse(text)


def test_mutate_and_distance(space):
    rng = random.Random(1)
    arch = space.sample(rng)
    for k in (1, 3, 16):
        other = space.mutate(arch, rng, k=k)
        assert space.distance(arch, other) == k
        space.parse(other)  # mutation stays inside the space (no skip in a stage's first block)
    assert space.distance(arch, arch) == 0


def test_presets_and_overrides():
    base, tiny = get_space("mobilenetv2", "base").config, get_space("mobilenetv2", "tiny").config
    assert (base.width, base.image_size, base.num_classes, base.in_chans) == (1.0, 224, 1000, 3)
    assert (tiny.image_size, tiny.num_classes) == (32, 10) and tiny.width < 1
    sp = get_space("mobilenetv2", "tiny", image_size=64, num_classes=5, in_chans=1)
    (images,), kwargs = sp.example_input(3)
    assert images.shape == (3, 1, 64, 64) and kwargs == {}
    net = sp.build_supernet()
    assert net(images, sp.sample(random.Random(0))).shape == (3, 5)
    assert sp.build_supernet(num_outputs=7).head.out_features == 7
    with pytest.raises(NasUsageError, match="unknown option"):
        get_space("mobilenetv2", "tiny", depth=2)
    with pytest.raises(NasUsageError, match="width=0"):
        get_space("mobilenetv2", "tiny", width=0)


def test_head_and_hidden_outputs(space):
    net = space.build_supernet()
    assert isinstance(net.head, nn.Linear) and net.head.out_features == 10
    assert net.num_outputs == 10 and net.head_type == "classification"
    with pytest.raises(NasUsageError, match="head='classification'"):
        space.build_supernet(head="mlm")
    arch = space.sample(random.Random(2))[:1] + ("skip",) + space.sample(random.Random(2))[2:]
    (x,), _ = space.example_input(2)
    logits, hiddens = net(x, arch, return_hidden=True)
    assert torch.equal(hiddens[2], hiddens[1])  # s1b1 is skip: identity
    assert not torch.equal(hiddens[3], hiddens[2])
    assert logits.shape == (2, 10)
    # the fixed depthwise-separable block, then one hidden per searchable block (slot)
    assert len(hiddens) == 1 + len(space.slots)
    sizes = [h.shape[-1] for h in hiddens]
    assert sizes == [16] + [8] * 2 + [4] * 3 + [2] * 7 + [1] * 4
    with pytest.raises(NasUsageError, match="16 slots"):
        net(x, arch[:-1])


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_child_matches_supernet(space, train):
    torch.manual_seed(0)
    supernet = randomise_batchnorm(space.build_supernet()).train(train)
    (x,), _ = space.example_input(8)
    rng = random.Random(3)
    for _ in range(20):
        arch = space.sample(rng)
        child = space.child(supernet, arch)  # a copy: one forward each, BN statistics apart
        assert child.training == train
        with torch.no_grad():
            expected, hidden_s = supernet(x, arch, return_hidden=True)
            got, hidden_c = child(x, return_hidden=True)
        assert (got - expected).abs().max() < 1e-5
        assert all((a - b).abs().max() < 1e-5 for a, b in zip(hidden_c, hidden_s))


def test_child_holds_only_chosen_options(space):
    supernet = space.build_supernet()
    arch = space.parse(",".join(["k5e3", "skip"] + ["k7e6"] * 14))
    child = space.child(supernet, arch)
    for stage, n in enumerate(REPEATS, 1):
        for block in range(n):
            ops = child.net.blocks[stage][block].ops
            assert list(ops) == [arch[sum(REPEATS[: stage - 1]) + block]]
    assert isinstance(child.net.blocks[1][1].ops["skip"], nn.Identity)
    assert not list(child.net.blocks[1][1].parameters())
    child_params = sum(p.numel() for p in child.parameters())
    assert child_params == space.cost(arch).params
    assert child_params < sum(p.numel() for p in supernet.parameters())


def test_unused_options_get_no_gradient(space):
    supernet = space.build_supernet().train()
    arch = space.sample(random.Random(4))
    (x,), _ = space.example_input(4)
    supernet(x, arch).sum().backward()
    slot_of = {(int(s.name[1]), int(s.name[3:])): i for i, s in enumerate(space.slots)}
    used = 0
    for name, p in supernet.named_parameters():
        parts = name.split(".")
        if parts[0] == "blocks" and parts[3:4] == ["ops"]:
            token = parts[4]
            chosen = arch[slot_of[int(parts[1]), int(parts[2])]] == token
            assert (p.grad is not None) == chosen, name
            used += chosen
        else:
            assert p.grad is not None, name  # stem, fixed block, head conv and classifier
    assert used > 0


def test_base_parity_via_cli(cli):
    code, out, err = cli("space", "show", "mobilenetv2", "--preset", "base",
                         "--arch", "mobilenetv2", "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["params"] == 3_504_872  # timm mobilenetv2_100
    assert info["backbone_params"] == 3_504_872 - (1280 * 1000 + 1000)
    assert math.isclose(info["macs"], 300.8e6, rel_tol=0.01)


def test_base_child_matches_timm_mobilenetv2_100():
    space = get_space("mobilenetv2", "base")
    child = space.build_child("mobilenetv2").eval()
    reference = randomise_batchnorm(timm.create_model("mobilenetv2_100", pretrained=False)).eval()
    assert load_timm_mobilenetv2(child, reference.state_dict()) == []
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (child(x) - reference(x)).abs().max() < 1e-4
    # and back: our weights load strictly into timm's own model
    assert to_timm_state_dict(child).keys() == reference.state_dict().keys()
    reference.load_state_dict(to_timm_state_dict(child))


def test_supernet_loads_timm_weights_into_reference_options():
    # width 0.35 with timm's 1280-wide head is timm's mobilenetv2_035: same rounding of channels
    space = get_space("mobilenetv2", "tiny", width=0.35, num_features=1280)
    reference = randomise_batchnorm(timm.create_model("mobilenetv2_035", num_classes=10)).eval()
    supernet = space.build_supernet()
    left = load_timm_mobilenetv2(supernet, reference.state_dict())
    assert left and all(".ops." in k and ".ops.k3e6." not in k for k in left)
    child = space.child(supernet, "mobilenetv2").eval()
    (x,), _ = space.example_input(4)
    with torch.no_grad():
        assert (child(x) - reference(x)).abs().max() < 1e-4
    with pytest.raises(NasUsageError, match="checkpoint's width"):
        load_timm_mobilenetv2(space.build_supernet(), timm.create_model("mobilenetv2_100").state_dict())
    with pytest.raises(NasUsageError, match="no timm mobilenetv2_100 weights"):
        load_timm_mobilenetv2(supernet, {})


def test_export_to_timm_efficientnet_with_skips_and_mixed_kernels(space):
    tokens = ["k7e3", "skip", "k5e6", "k3e3", "skip", "k3e6", "skip", "skip", "k5e3",
              "k7e6", "skip", "k5e3", "k3e6", "skip", "skip", "k7e3"]
    arch = space.parse(",".join(tokens))
    assert timm_arch_def(arch) == [
        ["ds_r1_k3_s1_c16"],
        ["ir_r1_k7_s2_e3_c24"],
        ["ir_r1_k5_s2_e6_c32", "ir_r1_k3_s1_e3_c32"],
        ["ir_r1_k3_s2_e6_c64", "ir_r1_k5_s1_e3_c64"],
        ["ir_r1_k7_s1_e6_c96", "ir_r1_k5_s1_e3_c96"],
        ["ir_r1_k3_s2_e6_c160"],
        ["ir_r1_k7_s1_e3_c320"],
    ]
    supernet = randomise_batchnorm(space.build_supernet(), seed=1)
    child = space.child(supernet, arch).eval()
    exported = to_timm_model(space, child).eval()
    assert isinstance(exported, EfficientNet)
    assert sum(p.numel() for p in exported.parameters()) == space.cost(arch).params
    (x,), _ = space.example_input(4)
    with torch.no_grad():
        assert (child(x) - exported(x)).abs().max() < 1e-4
    # the all-k3e6 child maps onto exactly MobileNetV2's timm layout
    reference = EfficientNet(**timm_model_kwargs(space, "mobilenetv2"))
    assert set(reference.state_dict()) == set(timm.create_model("mobilenetv2_035").state_dict())


def test_listed_by_nas_spaces(cli):
    code, out, _ = cli("spaces", "--json")
    assert code == 0
    row = next(r for r in json.loads(out) if r["name"] == "mobilenetv2")
    assert row["presets"] == ["base", "tiny"] and "MobileNet-v2" in row["summary"]


def test_weight_sharing_init_nests_options_and_zeroes_residual_scales():
    net = get_space("mobilenetv2", "tiny").build_supernet()
    choice = net.blocks[1][1]  # s1b1: residual (stride 1, same width)
    largest, small = choice.ops["k7e6"], choice.ops["k3e3"]
    hidden = small.conv_pw.weight.shape[0]
    assert torch.equal(small.conv_pw.weight, largest.conv_pw.weight[:hidden])
    assert torch.equal(small.conv_dw.weight, largest.conv_dw.weight[:hidden, :, 2:5, 2:5])
    assert torch.equal(small.conv_pwl.weight, largest.conv_pwl.weight[:, :hidden])
    assert all(op.bn3.weight.abs().sum() == 0 for op in choice.ops.values() if hasattr(op, "bn3"))
    first = net.blocks[1][0].ops["k5e3"]  # a stage's first block has no residual: keeps its scale
    assert not first.has_skip and torch.all(first.bn3.weight == 1)
    plain = get_space("mobilenetv2", "tiny", zero_init_last=False, nested_init=False).build_supernet()
    choice = plain.blocks[1][1]
    assert torch.all(choice.ops["k3e3"].bn3.weight == 1)
    assert not torch.equal(choice.ops["k3e3"].conv_pw.weight,
                           choice.ops["k7e6"].conv_pw.weight[:choice.ops["k3e3"].conv_pw.weight.shape[0]])
