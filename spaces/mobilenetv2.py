"""The ProxylessNAS-style MobileNet-v2 space (the paper's ImageNet space), built from timm's blocks.

MobileNetV2's skeleton (timm ``mobilenetv2_100``): stem conv 3x3/2 -> a fixed depthwise-separable
block (16 ch) -> six stages of 24-32-64-96-160-320 channels with 2-3-4-3-3-1 blocks and strides
2-2-2-1-2-1 -> 1x1 head conv (1280 ch) -> global average pool -> dropout -> linear classifier.

Each of the 16 inverted-residual blocks is a slot named ``s{stage}b{block}`` (stage 1..6, the index
of timm's ``blocks.{stage}``; block 0-based within the stage). Its options are MBConv with kernel
{3,5,7} x expansion {3,6} (``k3e3`` ... ``k7e6``, timm ``InvertedResidual`` with ReLU6 and
``BatchNormAct2d``), plus ``skip`` (identity) in every block but a stage's first, where stride or
width changes. Module names mirror timm's so weights map one to one (see :func:`load_timm_mobilenetv2`,
:func:`to_timm_state_dict`, :func:`timm_arch_def`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import torch
from timm.layers import create_classifier, create_conv2d, get_norm_act_layer
from timm.models._efficientnet_blocks import DepthwiseSeparableConv, InvertedResidual
from timm.models._efficientnet_builder import (
    decode_arch_def,
    efficientnet_init_weights,
    round_channels,
)
from timm.models.efficientnet import EfficientNet
from torch import nn

from nas import Arch, Child, Choice, NasUsageError, SearchSpace, Slot, register_space

# (channels, repeats, stride) of the searchable stages 1..6, as in MobileNetV2.
STAGES = ((24, 2, 2), (32, 3, 2), (64, 4, 2), (96, 3, 1), (160, 3, 2), (320, 1, 1))
STEM_CHANNELS, FIRST_BLOCK_CHANNELS = 32, 16
MBCONV = ("k3e3", "k3e6", "k5e3", "k5e6", "k7e3", "k7e6")
SKIP = "skip"
REFERENCE = "k3e6"  # MobileNetV2's own block
_TOKEN = re.compile(r"k(\d)e(\d)")
_OPTION_KEY = re.compile(r"blocks\.(\d+)\.(\d+)\.ops\.(\w+)\.(.*)")


@dataclass(frozen=True)
class MobileNetV2Config:
    width: float = 1.0  # channel multiplier, rounded like timm's round_channels (divisor 8)
    image_size: int = 224
    num_classes: int = 1000
    in_chans: int = 3
    drop_rate: float = 0.0  # dropout before the classifier (timm's drop_rate)
    num_features: int = 1280  # head conv width; timm uses max(num_features, rounded to width)
    # Initialisation for weight sharing (both on by default; irrelevant once pretrained weights load).
    # benchmarks/supernet_init.py (docs/reproduction.md): with timm's plain init the tiny super-net
    # stays at chance loss on digits for 1,200 uniform steps; with both it learns (loss 0.40).
    zero_init_last: bool = True  # residual options start as the identity (timm's zero_init_last)
    nested_init: bool = True  # a slot's options start as nested crops of its largest (k7e6) option


# (stage, block, channels, stride) of every searchable block, in slot order.
BLOCKS = tuple((s, b, c, stride if b == 0 else 1)
               for s, (c, n, stride) in enumerate(STAGES, start=1) for b in range(n))
NUM_SLOTS = len(BLOCKS)


def _options(block: int) -> tuple[str, ...]:
    return MBCONV if block == 0 else MBCONV + (SKIP,)


class MobileNetV2Net(nn.Module):
    """The super-net (or, with ``only``, a child): timm's module names, one Choice per block.

    ``forward(..., return_hidden=True)`` also returns per-block features for alignment losses: the
    fixed block's output, then every slot's output (17 tensors; a ``skip`` repeats its input).
    """

    def __init__(self, cfg: MobileNetV2Config, only: Arch | None, num_outputs: int):
        super().__init__()
        self.num_outputs, self.head_type = num_outputs, "classification"
        chs = partial(round_channels, multiplier=cfg.width)
        norm_act = get_norm_act_layer(nn.BatchNorm2d, nn.ReLU6)
        layers = dict(act_layer=nn.ReLU6, norm_layer=nn.BatchNorm2d)
        stem = chs(STEM_CHANNELS)
        self.conv_stem = create_conv2d(cfg.in_chans, stem, 3, stride=2)
        self.bn1 = norm_act(stem, inplace=True)
        in_chs = chs(FIRST_BLOCK_CHANNELS)
        stages = [nn.Sequential(DepthwiseSeparableConv(stem, in_chs, 3, **layers))]
        for i, (stage, block, channels, stride) in enumerate(BLOCKS):
            if block == 0:
                stages.append(nn.ModuleList())
            out_chs = chs(channels)
            ops = {}
            for token in _options(block) if only is None else (only[i],):
                if token == SKIP:
                    ops[token] = nn.Identity()
                else:
                    k, e = map(int, _TOKEN.fullmatch(token).groups())
                    ops[token] = InvertedResidual(in_chs, out_chs, k, stride, exp_ratio=e, **layers)
            stages[-1].append(Choice(ops))
            in_chs = out_chs
        self.blocks = nn.ModuleList(stages)
        self.num_features = max(cfg.num_features, chs(cfg.num_features))
        self.conv_head = create_conv2d(in_chs, self.num_features, 1)
        self.bn2 = norm_act(self.num_features, inplace=True)
        self.global_pool, self.dropout, self.head = create_classifier(
            self.num_features, num_outputs, drop_rate=cfg.drop_rate)
        efficientnet_init_weights(self)  # timm's (TF "goog") initialisation
        # ...except the classifier: goog's uniform(+-1/sqrt(classes)) suits 1000 classes, but with
        # 10 it starts the logits at std ~5 (initial loss ~7 instead of ln 10), and a super-net
        # whose child changes every step then diverges. A small normal init keeps logits near 0.
        nn.init.normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)
        for stage in self.blocks[1:]:
            for choice in stage:
                _init_options(choice, cfg.zero_init_last, cfg.nested_init)

    def forward(self, x: torch.Tensor, arch: Sequence[str], return_hidden: bool = False):
        """Logits, or ``(logits, hiddens)`` with ``return_hidden`` (see the class docstring)."""
        if len(arch) != NUM_SLOTS:
            raise NasUsageError(f"arch has {len(arch)} tokens but mobilenetv2 has {NUM_SLOTS} "
                                "slots; parse it with space.parse(arch) first")
        x = self.blocks[0](self.bn1(self.conv_stem(x)))
        hiddens = [x]
        tokens = iter(arch)
        for stage in self.blocks[1:]:
            for choice in stage:
                x = choice(x, next(tokens))
                hiddens.append(x)
        x = self.global_pool(self.bn2(self.conv_head(x)))
        logits = self.head(self.dropout(x))
        return (logits, hiddens) if return_hidden else logits


@torch.no_grad()
def _init_options(choice: Choice, zero_init_last: bool, nested: bool) -> None:
    """Start a slot's options close together, so swapping one for another barely moves the net.

    ``nested``: every MBConv option copies its weights from the largest option's (the first
    ``hidden`` channels, the centre ``k x k`` of the depthwise kernel), as once-for-all networks
    share them -- here only at initialisation; the options then train independently.
    ``zero_init_last``: residual options get a zero last-BN scale, so they begin as the identity,
    like ``skip`` (Goyal et al., 2017; timm's ``zero_init_last``).
    """
    largest = choice.ops[MBCONV[-1]] if MBCONV[-1] in choice.ops else None
    for op in choice.ops.values():
        if not isinstance(op, InvertedResidual):
            continue
        if nested and largest is not None and op is not largest:
            hidden, k = op.conv_pw.weight.shape[0], op.conv_dw.weight.shape[-1]
            crop = (largest.conv_dw.weight.shape[-1] - k) // 2
            op.conv_pw.weight.copy_(largest.conv_pw.weight[:hidden])
            op.conv_dw.weight.copy_(largest.conv_dw.weight[:hidden, :, crop:crop + k, crop:crop + k])
            op.conv_pwl.weight.copy_(largest.conv_pwl.weight[:, :hidden])
        if zero_init_last and op.has_skip:
            nn.init.zeros_(op.bn3.weight)


@register_space("mobilenetv2")
class MobileNetV2Space(SearchSpace):
    """ProxylessNAS MobileNet-v2 space: MBConv k{3,5,7} x e{3,6} or skip per block (timm blocks)."""

    presets = {
        "base": MobileNetV2Config(),
        # timm's MobileNetV2 at channel multiplier 0.25 on 32 px: a 64-image train step takes
        # ~0.06-0.1 s on 2 CPU cores; narrower barely helps (channels floor at 8, per-op overhead)
        "tiny": MobileNetV2Config(width=0.25, image_size=32, num_classes=10),
    }
    has_batchnorm = True
    default_task = "digits-small"  # 200 training images, where children differ by tens of points

    def __init__(self, preset: str = "tiny", **overrides: Any):
        super().__init__(preset, **overrides)
        c = self.config
        checks = {"width": c.width > 0, "image_size": c.image_size >= 1,
                  "num_classes": c.num_classes >= 1, "in_chans": c.in_chans >= 1,
                  "drop_rate": 0 <= c.drop_rate < 1, "num_features": c.num_features >= 1}
        for field, ok in checks.items():
            if not ok:
                raise NasUsageError(f"mobilenetv2 option {field}={getattr(c, field)!r} is invalid; "
                                    "use a positive value (drop_rate in [0, 1))")

    def _make_slots(self) -> list[Slot]:
        return [Slot(f"s{s}b{b}", _options(b)) for s, b, _, _ in BLOCKS]

    def _build(self, only: Arch | None, num_outputs: int | None, head: str) -> nn.Module:
        if head != "classification":
            raise NasUsageError(f"space 'mobilenetv2' has no '{head}' head; "
                                "use head='classification' (an image-classification task)")
        return MobileNetV2Net(self.config, only, num_outputs or self.config.num_classes)

    def example_input(self, batch_size: int = 1) -> tuple[tuple, dict]:
        c = self.config
        return (torch.randn(batch_size, c.in_chans, c.image_size, c.image_size),), {}

    def named_archs(self) -> dict[str, str]:
        return {"mobilenetv2": ",".join([REFERENCE] * NUM_SLOTS)}

    def export_extra(self, child: Child, arch: Arch, out: Path) -> dict[str, str]:
        """``nas export``: the child also on timm's EfficientNet builder (loads with timm alone)."""
        import json

        from safetensors.torch import save_file

        kwargs = timm_model_kwargs(self, arch, child.net.num_outputs)
        state = to_timm_state_dict(child)
        save_file({k: v.contiguous() for k, v in state.items()}, str(out / "timm_model.safetensors"))
        config = {
            "arch_def": timm_arch_def(arch), "num_features": kwargs["num_features"],
            "stem_size": kwargs["stem_size"], "num_classes": kwargs["num_classes"],
            "in_chans": kwargs["in_chans"], "channel_multiplier": self.config.width,
            "act_layer": "relu6", "norm_layer": "batchnorm2d",
            "input_size": [kwargs["in_chans"], self.config.image_size, self.config.image_size],
        }
        (out / "timm_config.json").write_text(json.dumps(config, indent=2) + "\n")
        (out / "load_timm.py").write_text(TIMM_LOADER)
        return {"timm_weights": "timm_model.safetensors", "timm_config": "timm_config.json",
                "timm_loader": "load_timm.py"}


TIMM_LOADER = """\
import json, functools, torch
from safetensors.torch import load_file
from timm.models.efficientnet import EfficientNet
from timm.models._efficientnet_builder import decode_arch_def, round_channels

cfg = json.load(open("timm_config.json"))
model = EfficientNet(
    block_args=decode_arch_def(cfg["arch_def"]), num_features=cfg["num_features"],
    stem_size=cfg["stem_size"], num_classes=cfg["num_classes"], in_chans=cfg["in_chans"],
    round_chs_fn=functools.partial(round_channels, multiplier=cfg["channel_multiplier"]),
    act_layer=torch.nn.ReLU6, norm_layer=torch.nn.BatchNorm2d,
)
model.load_state_dict(load_file("timm_model.safetensors"))
model.eval()
"""


# ---- timm interoperability ----------------------------------------------------------------------
def _timm_key(key: str, arch: Sequence[str] | None) -> str | None:
    """timm's name of one of our state-dict keys; ``None`` if timm's network has no such weight.

    Without ``arch`` the target is ``mobilenetv2_100`` (only ``k3e6`` options map); with it, the
    EfficientNet of :func:`timm_arch_def`, where skipped blocks are absent so later ones move up.
    """
    if key.startswith("head."):
        return "classifier." + key[len("head."):]
    match = _OPTION_KEY.fullmatch(key)
    if match is None:
        return key
    stage, block, token, rest = int(match[1]), int(match[2]), match[3], match[4]
    if arch is None:
        return f"blocks.{stage}.{block}.{rest}" if token == REFERENCE else None
    first = sum(n for _, n, _ in STAGES[: stage - 1])
    index = sum(t != SKIP for t in arch[first: first + block])
    return f"blocks.{stage}.{index}.{rest}"


def load_timm_mobilenetv2(module: nn.Module, timm_state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Copy timm ``mobilenetv2_100`` weights into a child or super-net (its ``k3e6`` options).

    Other timm widths (``mobilenetv2_035`` ...) load into a space built with the same width. Returns our keys that got no weight (other options, or keys the given state dict lacks).
    """
    net = module.net if isinstance(module, Child) else module
    loaded, left = {}, []
    for key, ours in net.state_dict().items():
        name = _timm_key(key, None)
        if name not in timm_state_dict:
            left.append(key)
            continue
        theirs = timm_state_dict[name]
        if theirs.shape != ours.shape:
            raise NasUsageError(
                f"timm weight '{name}' has shape {tuple(theirs.shape)} but '{key}' has "
                f"{tuple(ours.shape)}; build the space with the checkpoint's width (base preset "
                "for mobilenetv2_100) and num_classes, or drop 'classifier.*' from the state dict")
        loaded[key] = theirs
    if not loaded:
        raise NasUsageError("no timm mobilenetv2_100 weights found in the state dict; pass "
                            "timm.create_model('mobilenetv2_100').state_dict()")
    net.load_state_dict(loaded, strict=False)
    return left


def timm_arch_def(arch: str | Sequence[str]) -> list[list[str]]:
    """timm's ``arch_def`` for a child (``decode_arch_def`` input); skipped blocks are left out."""
    arch = MobileNetV2Space().parse(arch)
    stages = [[f"ds_r1_k3_s1_c{FIRST_BLOCK_CHANNELS}"]]
    for token, (_, block, channels, stride) in zip(arch, BLOCKS):
        if block == 0:
            stages.append([])
        if token != SKIP:
            k, e = _TOKEN.fullmatch(token).groups()
            stages[-1].append(f"ir_r1_k{k}_s{stride}_e{e}_c{channels}")
    return stages


def timm_model_kwargs(space: MobileNetV2Space, arch: str | Sequence[str],
                      num_classes: int | None = None) -> dict[str, Any]:
    """``EfficientNet(**kwargs)`` arguments for a child, as timm's ``_gen_mobilenet_v2`` sets them."""
    c = space.config
    chs = partial(round_channels, multiplier=c.width)
    return dict(
        block_args=decode_arch_def(timm_arch_def(arch)),
        num_features=max(c.num_features, chs(c.num_features)),
        stem_size=STEM_CHANNELS, round_chs_fn=chs, norm_layer=nn.BatchNorm2d, act_layer=nn.ReLU6,
        num_classes=num_classes or c.num_classes, in_chans=c.in_chans, drop_rate=c.drop_rate,
    )


def to_timm_state_dict(child: Child) -> dict[str, torch.Tensor]:
    """A child's weights under the names of its timm ``EfficientNet`` (see :func:`timm_model_kwargs`)."""
    return {_timm_key(k, child.arch): v.detach().clone() for k, v in child.net.state_dict().items()}


def to_timm_model(space: MobileNetV2Space, child: Child) -> EfficientNet:
    """The child as a timm ``EfficientNet`` carrying its weights (for timm's tooling and export)."""
    model = EfficientNet(**timm_model_kwargs(space, child.arch, child.net.num_outputs))
    model.load_state_dict(to_timm_state_dict(child))
    return model.train(child.training)
