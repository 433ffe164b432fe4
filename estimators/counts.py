"""``params`` and ``macs``: the free baselines every estimator must beat.

On NAS-Bench-201 the number of parameters alone ranks children about as well as many trained
proxies (Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021, Table 1, report
``#params`` with Spearman rho 0.73 on CIFAR-10), so every ranking table holds it beside the others.
"""

from __future__ import annotations

from nas import register_estimator
from nas.evaluate import ZeroCostEstimator


@register_estimator("params")
class Params(ZeroCostEstimator):
    """Number of parameters of the child: the free baseline.

    Counted as built for the task (head included), from the space's cost counter: more parameters, higher score. Needs no data and no forward pass."""

    needs_data = False
    needs_model = False

    def score(self, child, batch, space, arch) -> float:
        return float(space.cost(arch).params)


@register_estimator("macs")
class Macs(ZeroCostEstimator):
    """Multiply-accumulates of one example: the other free baseline.

    Counted with ``torch.utils.flop_counter`` (the space's cost counter): more compute, higher score. Needs no data."""

    needs_data = False
    needs_model = False

    def score(self, child, batch, space, arch) -> float:
        return float(space.cost(arch).macs)
