"""``synflow``: synaptic flow at initialisation, data-free.

Tanaka et al., "Pruning neural networks without any data by iteratively conserving synaptic flow"
(NeurIPS 2020), used as a zero-cost NAS proxy by Abdelfattah et al., "Zero-Cost Proxies for
Lightweight NAS" (ICLR 2021): with every parameter replaced by its absolute value and BatchNorm
removed, feed an all-ones input, back-propagate the sum of the outputs ``R``, and sum
``theta * dR/dtheta`` over the convolution and linear weights.
"""

from __future__ import annotations

import torch
from torch import nn

from nas import register_estimator
from nas.evaluate import ZeroCostEstimator
from nas.estimators._adapt import weighted_layers


class _Affine(nn.Module):
    """A LayerNorm without its normalisation: ``x * weight + bias`` (synflow needs a positive,
    scale-carrying signal; normalising an all-ones input would give zeros)."""

    def __init__(self, norm: nn.LayerNorm):
        super().__init__()
        self.weight, self.bias = norm.weight, norm.bias

    def forward(self, x):
        x = x if self.weight is None else x * self.weight
        return x if self.bias is None else x + self.bias


def _linearise(net: nn.Module) -> None:
    """In place: |theta| for every parameter, BatchNorm as the identity up to its (absolute)
    affine terms (fresh statistics, eval mode), LayerNorm as its affine terms, dropout off."""
    for name, module in list(net.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.LayerNorm):
                setattr(module, child_name, _Affine(child))
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
    net.eval()


@register_estimator("synflow")
class Synflow(ZeroCostEstimator):
    """Synaptic flow, data-free, in float64 (Tanaka et al. 2020; Abdelfattah et al. 2021).

    Sum of ``theta * dR/dtheta`` over
    conv and linear weights, ``R`` the summed output for an all-ones input through the child with
    absolute weights, computed in float64 (it overflows float32 on deep nets).

    BatchNorm is removed (kept with fresh statistics in eval mode, i.e. the identity up to its
    affine terms, which also keeps timm's fused BatchNorm+activation working). On a transformer
    (``bert``) the embeddings are excluded: the all-ones tensor replaces the embedding output, and
    each LayerNorm keeps only its affine terms. Data-free: needs no batch."""

    needs_data = False

    def score(self, child, batch, space, arch) -> float:
        child = child.double()
        _linearise(child)
        args, kwargs = space.example_input(1)
        x = args[0]
        handle = None
        if x.is_floating_point():
            x = torch.ones_like(x, dtype=torch.float64)
        else:
            embedding = space.input_embedding(child.net)
            handle = embedding.register_forward_hook(
                lambda module, inputs, out: torch.ones_like(out, dtype=torch.float64))
        try:
            out = child(x, *args[1:], **kwargs)
        finally:
            if handle is not None:
                handle.remove()
        layers = weighted_layers(child)
        grads = torch.autograd.grad(out.sum(), [m.weight for m in layers], allow_unused=True)
        return float(sum((m.weight.detach() * g).sum() for m, g in zip(layers, grads) if g is not None))
