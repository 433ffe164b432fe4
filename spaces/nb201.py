"""NAS-Bench-201: the tabular cell space (6 edges x 5 ops = 15,625 cells) searched against a table.

There is no super-net here: the benchmark's value is its table of fully trained accuracies, which
lets every searcher be measured against ground truth in seconds (``nas search --space nb201
--table CSV --metric COLUMN``). The canonical arch text is the benchmark's own cell string
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``; slot ``"j<-i"`` is the edge from node i to node j.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from nas import Arch, Cost, NasUsageError, SearchSpace, Slot, register_space

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (to, from), in cell-string order


@dataclass(frozen=True)
class NB201Config:
    """NAS-Bench-201 has one fixed cell space; presets exist only for interface uniformity."""


@register_space("nb201")
class NB201Space(SearchSpace):
    """NAS-Bench-201 cells (15,625); tabular: search it with --table, it has no super-net."""

    presets = {"tiny": NB201Config(), "base": NB201Config()}
    tabular = True

    def __init__(self, preset: str = "tiny", **overrides):
        super().__init__(preset, **overrides)
        # Filled by a table evaluator from the table's params/FLOPs columns, when it has them.
        self.table_costs: dict[Arch, Cost] | None = None

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

    def _build(self, only, num_outputs, head):
        raise NasUsageError(
            "nb201 is tabular; use --table (nas search --space nb201 --table CSV --metric COLUMN)"
        )

    def example_input(self, batch_size: int = 1):
        raise NasUsageError("nb201 is tabular; use --table")

    def named_archs(self) -> dict[str, str]:
        # The ResNet-like cell of the NAS-Bench-201 paper (Dong & Yang, 2020, Fig. 1).
        return {"resnet": "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|"}

    def set_table_costs(self, costs: Mapping[Arch, Cost] | None) -> None:
        self.table_costs = dict(costs) if costs is not None else None

    def cost(self, arch: Sequence[str]) -> Cost | None:
        """The table's params/MACs of a cell, or None when the table has no such columns."""
        if self.table_costs is None:
            return None
        arch = self.parse(arch)
        if arch not in self.table_costs:
            raise NasUsageError(f"the table has no cost row for cell {self.encode(arch)}")
        return self.table_costs[arch]
