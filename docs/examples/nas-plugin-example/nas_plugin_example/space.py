"""``mlp``: a small search space over the widths and activations of a 3-layer MLP.

It shows everything a space needs: slots, presets, a super-net built from ``Choice`` modules
(``only`` builds a single child), a task head and an example input for cost measurement.
"""

from dataclasses import dataclass

import torch
from torch import nn

from nas import Choice, SearchSpace, Slot


@dataclass(frozen=True)
class MLPPreset:
    in_features: int = 64  # digits images flattened at 8x8 would be 64; any vector input works
    hidden: int = 64
    num_classes: int = 10
    layers: int = 3


class _Layer(nn.Module):
    def __init__(self, dim: int, width: int, act: str):
        super().__init__()
        self.up, self.down = nn.Linear(dim, width), nn.Linear(width, dim)
        self.act = nn.ReLU() if act == "relu" else nn.GELU()

    def forward(self, x):
        return x + self.down(self.act(self.up(x)))


class MLPNet(nn.Module):
    def __init__(self, cfg: MLPPreset, slots, only, num_outputs):
        super().__init__()
        self.num_outputs, self.head_type = num_outputs or cfg.num_classes, "classification"
        self.stem = nn.Linear(cfg.in_features, cfg.hidden)

        def options(slot):
            return {o: (nn.Identity() if o == "skip" else
                        _Layer(cfg.hidden, int(o.split("-")[0][1:]), o.split("-")[1]))
                    for o in slot.options if only is None or o == only[len(self.blocks)]}

        self.blocks = nn.ModuleList()
        for slot in slots:
            self.blocks.append(Choice(options(slot)))
        self.head = nn.Linear(cfg.hidden, self.num_outputs)

    def forward(self, x, arch, return_hidden=False):
        h = self.stem(x.flatten(1))
        hidden = []
        for block, token in zip(self.blocks, arch):
            h = block(h, token)
            hidden.append(h)
        logits = self.head(h)
        return (logits, hidden) if return_hidden else logits


class MLPSpace(SearchSpace):
    """A 3-layer residual MLP: width {32, 128} x activation {relu, gelu}, or skip."""

    name = "mlp"
    presets = {"tiny": MLPPreset(), "base": MLPPreset(hidden=256, layers=6)}
    default_task = None

    def _make_slots(self):
        options = ("w32-relu", "w32-gelu", "w128-relu", "w128-gelu", "skip")
        return [Slot(f"layer{i}", options) for i in range(self.config.layers)]

    def _build(self, only, num_outputs, head):
        return MLPNet(self.config, self.slots, only, num_outputs)

    def example_input(self, batch_size=1):
        return (torch.zeros(batch_size, self.config.in_features),), {}
