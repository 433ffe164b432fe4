"""``naswot``: the log-determinant of the activation-pattern kernel (Mellor et al., ICML 2021).

"Neural Architecture Search without Training": for a batch of N inputs, each input's binary code
``c`` says which rectified units are active; ``K[i, j]`` counts the units where inputs i and j
agree (``c_i c_j + (1 - c_i)(1 - c_j)`` summed over units), and the score is ``log |det K|``.
A network that tells its inputs apart (codes far apart) gets a larger score.
"""

from __future__ import annotations

import torch

from nas import NasUsageError, register_estimator
from nas.evaluate import ZeroCostEstimator, deterministic_mode
from nas.estimators._adapt import run


@register_estimator("naswot")
class NASWOT(ZeroCostEstimator):
    """Log-determinant of the activation-pattern kernel over one batch (Mellor et al. 2021).

    ``log det K`` over one batch, ``K = C C^T + (1 - C)(1 - C)^T`` with ``C``
    the inputs' binary activation codes (every unit of every activation the space's
    :meth:`~nas.SearchSpace.activation_modules` lists), in float64.

    CNN spaces: the codes of ReLU / ReLU6 units (BatchNorm with the batch's statistics, as at
    initialisation). On a transformer (``bert``) GELU is applied functionally, so the code is the
    sign of its input (GELU(x) > 0 exactly when x > 0) at every FFN and separable-convolution unit
    and token position, padding included; dropout is off. A singular ``K`` (two inputs with the same
    code) is regularised with ``1e-6`` of its mean diagonal, so the score stays finite."""

    def score(self, child, batch, space, arch) -> float:
        sites = space.activation_modules(child.net)
        if not sites:
            raise NasUsageError(f"estimator 'naswot' needs rectified activations; space '{space.name}' "
                                "lists none (override SearchSpace.activation_modules)")
        kernel: list[torch.Tensor] = []

        def hook(module, inputs, out):
            # Agreement counts are integers: exact in float32 below 2^24 units per site, and a
            # float32 product is several times faster than a float64 one on CPUs.
            c = (out.detach() > 0).flatten(1)
            c = c.float() if c.shape[1] < 2 ** 24 else c.double()
            k = (c @ c.T + (1 - c) @ (1 - c).T).double()
            kernel.append(k if not kernel else kernel.pop() + k)

        handles = [m.register_forward_hook(hook) for m in sites]
        try:
            with deterministic_mode(child, batch_stats=True), torch.no_grad():
                run(child, batch)
        finally:
            for h in handles:
                h.remove()
        k = kernel[0]
        sign, logdet = torch.linalg.slogdet(k)
        if sign <= 0 or not torch.isfinite(logdet):
            eye = torch.eye(len(k), dtype=k.dtype)
            sign, logdet = torch.linalg.slogdet(k + 1e-6 * k.diagonal().mean() * eye)
        return float(logdet)
