"""``snip``: connection sensitivity at initialisation (Lee et al., ICLR 2019).

"SNIP: Single-shot Network Pruning based on Connection Sensitivity", used as a zero-cost NAS proxy
by Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS" (ICLR 2021): the saliency of a
weight is ``|theta * dL/dtheta|`` for the loss ``L`` of one labelled batch; a child's score is the
sum over its convolution and linear weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nas import register_estimator
from nas.evaluate import ZeroCostEstimator, deterministic_mode
from nas.estimators._adapt import run, weighted_layers


@register_estimator("snip")
class Snip(ZeroCostEstimator):
    """Connection sensitivity of one labelled batch (Lee et al. 2019; Abdelfattah et al. 2021).

    Sum of ``|theta * dL/dtheta|`` over conv and linear
    weights (head included), ``L`` the cross-entropy of one training batch through the freshly
    initialised child (BatchNorm with the batch's statistics, dropout off). On ``bert`` the same
    sum runs over the attention, FFN, convolution, pooler and head weights; embeddings are excluded."""

    def score(self, child, batch, space, arch) -> float:
        layers = weighted_layers(child)
        with deterministic_mode(child, batch_stats=True):
            loss = F.cross_entropy(run(child, batch).float(), batch["labels"])
            grads = torch.autograd.grad(loss, [m.weight for m in layers], allow_unused=True)
        return float(sum((m.weight.detach() * g).abs().sum().double()
                         for m, g in zip(layers, grads) if g is not None))
