"""NAS-Bench-201: the cell space (6 edges x 5 ops = 15,625 cells) as a weight-sharing super-net.

The network follows NAS-Bench-201's definition (Dong & Yang, ICLR 2020; ``TinyNetwork`` of its
reference code): a 3x3 conv + BN stem, three stages of ``N`` cells with ``C``, ``2C``, ``4C``
channels joined by the benchmark's residual reduction blocks (ReLU-conv3x3/2-BN, ReLU-conv3x3-BN,
plus an avg-pool + 1x1-conv shortcut), then BN + ReLU, global pooling and a linear head. Every cell
holds the same arch: a DAG of 4 nodes whose 6 edges ``j<-i`` each run one of ``none`` (zeros),
``skip_connect``, ``nor_conv_1x1``, ``nor_conv_3x3`` (ReLU-conv-BN) or ``avg_pool_3x3``; node j is
the sum of its input edges and node 3 is the cell's output.

A slot is an edge; it owns one :class:`~nas.Choice` per cell (``3N`` of them), all switched by the
same token. The canonical arch text is the benchmark's own cell string
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``, so a child is looked up in the benchmark's table as is
(``nas rank RUN --ground-truth TABLE.csv --arch-column cellstr --metric cifar10-test``) and the
tabular searches (``nas search --space nb201 --table CSV --metric COLUMN``) keep working.

Presets: ``bench`` (= ``base``) is the benchmark's own network, C 16 and N 5: 1,531,546 parameters
for 10 classes with every edge ``nor_conv_3x3`` (the table's 1.5316 MB), 0.38 s per uniform
super-net step of 64 images on 2 CPU cores. ``tiny`` (C 8, N 2) is the CPU preset
(benchmarks/nb201.py, docs/reproduction.md): about 0.1 s per step on one core.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
from torch import nn

from nas import Arch, Choice, Cost, NasUsageError, SearchSpace, Slot, register_space

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (to, from), in cell-string order


@dataclass(frozen=True)
class NB201Config:
    channels: int = 16  # C: the first stage's width; stages have C, 2C, 4C
    cells: int = 5  # N: cells per stage
    num_classes: int = 10
    in_chans: int = 3
    image_size: int = 32
    bn_affine: bool = True  # NAS-Bench-201's trained networks have affine BN


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, affine: bool):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class Zero(nn.Module):
    """The ``none`` edge: contributes zeros (keeps the graph, so every node has an input)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def _make_op(token: str, channels: int, affine: bool) -> nn.Module:
    if token == "none":
        return Zero()
    if token == "skip_connect":
        return nn.Identity()
    if token == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, affine)
    if token == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, affine)
    if token == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(token)


class Cell(nn.Module):
    """One searchable cell: ``edges[k]`` is the Choice of edge ``EDGES[k]``."""

    def __init__(self, channels: int, only: Arch | None, affine: bool):
        super().__init__()
        self.edges = nn.ModuleList(
            Choice({t: _make_op(t, channels, affine) for t in (OPS if only is None else (only[k],))})
            for k in range(len(EDGES))
        )

    def forward(self, x: torch.Tensor, arch: Sequence[str]) -> torch.Tensor:
        nodes = [x]
        k = 0
        for to in (1, 2, 3):
            total = None
            for src in range(to):
                out = self.edges[k](nodes[src], arch[k])
                total = out if total is None else total + out
                k += 1
            nodes.append(total)
        return nodes[3]


class ResidualReduction(nn.Module):
    """NAS-Bench-201's reduction block between stages (a ResNet basic block with stride 2)."""

    def __init__(self, c_in: int, c_out: int, affine: bool):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, affine)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, affine)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, stride=2),
                                        nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor, arch: Sequence[str] | None = None) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class NB201Net(nn.Module):
    """The super-net (or, with ``only``, a child). ``return_hidden`` also returns every cell's and
    reduction block's output (for MAGIC-A's hidden alignment)."""

    def __init__(self, cfg: NB201Config, only: Arch | None, num_outputs: int):
        super().__init__()
        self.num_outputs, self.head_type = num_outputs, "classification"
        c, n = cfg.channels, cfg.cells
        self.stem = nn.Sequential(nn.Conv2d(cfg.in_chans, c, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c))
        layers: list[nn.Module] = []
        c_prev = c
        for stage, width in enumerate((c, 2 * c, 4 * c)):
            if stage > 0:
                layers.append(ResidualReduction(c_prev, width, cfg.bn_affine))
            layers.extend(Cell(width, only, cfg.bn_affine) for _ in range(n))
            c_prev = width
        self.cells = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=True))
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(c_prev, num_outputs)

    def forward(self, x: torch.Tensor, arch: Sequence[str], return_hidden: bool = False):
        if len(arch) != len(EDGES):
            raise NasUsageError(f"arch has {len(arch)} tokens but nb201 cells have {len(EDGES)} "
                                "edges; parse it with space.parse(arch) first")
        x = self.stem(x)
        hiddens = []
        for layer in self.cells:
            x = layer(x, arch)
            hiddens.append(x)
        logits = self.head(self.global_pool(self.lastact(x)).flatten(1))
        return (logits, hiddens) if return_hidden else logits


@register_space("nb201")
class NB201Space(SearchSpace):
    """NAS-Bench-201 cells (15,625) as a weight-sharing super-net, or searched against its table."""

    presets = {
        "tiny": NB201Config(channels=8, cells=2),  # the CPU preset (benchmarks/nb201.py)
        "bench": NB201Config(),  # the benchmark's own network: C 16, N 5
        "base": NB201Config(),  # = bench, the name every space's paper-scale preset has
    }
    has_batchnorm = True
    default_task = "cifar10"
    tabular = True  # also searchable against a table of trained results (--table)
    # NAS-Bench-201's own recipe (SGD, Nesterov momentum 0.9, weight decay 5e-4, cosine schedule)
    # at batch 64, lr 0.1: the setting of the mode comparison in docs/reproduction.md. There, after
    # 2,000 uniform steps lr 0.1 and 0.05 rank children alike (Kendall tau vs the 12-epoch table
    # 0.04 +- 0.12 over 2 seeds vs -0.03, 1 seed); the budget matters more (4,000 steps: +0.17).
    default_ds_config = {"optimizer": {"type": "SGD", "params": {
        "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}}}

    def __init__(self, preset: str = "tiny", **overrides):
        super().__init__(preset, **overrides)
        c = self.config
        for field in ("channels", "cells", "num_classes", "in_chans", "image_size"):
            if getattr(c, field) < 1:
                raise NasUsageError(f"nb201 option {field}={getattr(c, field)!r} is invalid; "
                                    "use a positive integer")
        # Set by a table evaluator: the table's params/FLOPs per cell (None: the table has none).
        self.table_costs: dict[Arch, Cost] | None = None
        self.searched_as_table = False

    def _make_slots(self) -> Sequence[Slot]:
        return [Slot(f"{to}<-{src}", OPS) for to, src in EDGES]

    def encode(self, arch: Sequence[str]) -> str:
        ops = iter(arch)
        nodes = ["|" + "|".join(f"{next(ops)}~{src}" for src in range(to)) + "|" for to in (1, 2, 3)]
        return "+".join(nodes)

    def _decode_tokens(self, text: str) -> list[str]:
        if "~" not in text:  # also accept the generic comma-joined form
            return super()._decode_tokens(text)
        nodes = text.strip().split("+")
        if len(nodes) != 3:
            raise NasUsageError(
                f"cell string '{text}' has {len(nodes)} node(s), NAS-Bench-201 cells have 3; "
                "write |op~0|+|op~0|op~1|+|op~0|op~1|op~2|"
            )
        tokens = []
        for to, node in enumerate(nodes, start=1):
            edges = [e for e in node.strip().strip("|").split("|")]
            if len(edges) != to:
                raise NasUsageError(
                    f"node {to} of cell string '{text}' has {len(edges)} input edge(s), expected {to}; "
                    "write |op~0|+|op~0|op~1|+|op~0|op~1|op~2|"
                )
            for src, edge in enumerate(edges):
                op, _, index = edge.partition("~")
                if index != str(src):
                    raise NasUsageError(
                        f"edge '{edge}' of node {to} in cell string '{text}' should come from node "
                        f"{src} (write {op}~{src})"
                    )
                tokens.append(op)
        return tokens

    # ---- networks -----------------------------------------------------------------------------
    def _build(self, only: Arch | None, num_outputs: int | None, head: str) -> nn.Module:
        if head != "classification":
            raise NasUsageError(f"space 'nb201' has no '{head}' head; "
                                "use head='classification' (an image-classification task)")
        return NB201Net(self.config, only, num_outputs or self.config.num_classes)

    def example_input(self, batch_size: int = 1):
        c = self.config
        return (torch.randn(batch_size, c.in_chans, c.image_size, c.image_size),), {}

    def slot_modules(self, net: nn.Module) -> list[Choice]:
        """Per edge, one Choice whose options group that edge's op in every cell (the slot's
        parameters, as the trainer and the interference analysis need them)."""
        cells = [m for m in net.modules() if isinstance(m, Cell)]
        if not cells:
            raise ValueError("no nb201 cells found in the network")
        return [Choice({tok: nn.ModuleList(cell.edges[k].ops[tok] for cell in cells)
                        for tok in cells[0].edges[k].ops})
                for k in range(len(EDGES))]

    def named_archs(self) -> dict[str, str]:
        # The ResNet-like cell of the NAS-Bench-201 paper (Dong & Yang, 2020, Fig. 1), and the
        # all-3x3-convolution cell (the largest child).
        return {"resnet": "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|",
                "all-conv3x3": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
                               "|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"}

    # ---- costs --------------------------------------------------------------------------------
    def set_table_costs(self, costs: Mapping[Arch, Cost] | None) -> None:
        self.table_costs = dict(costs) if costs is not None else None
        self.searched_as_table = True

    def cost(self, arch: Sequence[str]) -> Cost | None:
        """Searched against a table: the table's params/MACs of a cell (None when the table has no
        such columns: the preset's network is not the one the table measured). Otherwise the
        child's own, measured like every space's."""
        if not self.searched_as_table:
            return super().cost(arch)
        if self.table_costs is None:
            return None
        arch = self.parse(arch)
        if arch not in self.table_costs:
            raise NasUsageError(f"the table has no cost row for cell {self.encode(arch)}")
        return self.table_costs[arch]
