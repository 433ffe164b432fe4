"""What the gradient-based proxies share: the weighted layers they sum over, and the continuous
input a proxy differentiates with respect to (the images, or a text space's embedding output)."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import nn

from nas import NasUsageError
from nas.evaluate import forward

WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def weighted_layers(net: nn.Module) -> list[nn.Module]:
    """Every convolution and linear layer with a weight (embeddings excluded, as in Abdelfattah et
    al.'s reference code, which sums over ``nn.Conv2d`` and ``nn.Linear``)."""
    return [m for m in net.modules() if isinstance(m, WEIGHTED) and m.weight is not None]


def run(child: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
    return forward(child, None, batch)


@contextlib.contextmanager
def input_probe(space, child: nn.Module, batch: dict[str, Any], name: str) -> Iterator[dict]:
    """Yields ``{"input": tensor}`` once the forward pass has run: the tensor the proxy
    differentiates against, with ``requires_grad`` -- the images, or the output of the space's
    :meth:`~nas.SearchSpace.input_embedding` for token inputs."""
    probe: dict[str, torch.Tensor] = {}
    if batch["input"].is_floating_point():
        x = batch["input"].detach().clone().requires_grad_(True)
        batch = {**batch, "input": x}
        probe["input"] = x
        probe["batch"] = batch
        yield probe
        return
    embedding = space.input_embedding(child.net if hasattr(child, "net") else child)
    if embedding is None:
        raise NasUsageError(f"estimator '{name}' needs continuous inputs or an input embedding; space "
                            f"'{space.name}' takes {batch['input'].dtype} inputs and declares no "
                            "input_embedding()")

    def hook(module, args, out):
        out = out.detach().requires_grad_(True)
        probe["input"] = out
        return out

    handle = embedding.register_forward_hook(hook)
    probe["batch"] = batch
    try:
        yield probe
    finally:
        handle.remove()
