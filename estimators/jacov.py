"""``jacov``: Jacobian covariance (Mellor et al., "Neural Architecture Search without Training",
arXiv:2006.04647v1, 2020; the proxy of that paper's first version).

For a batch of N inputs, take each input's Jacobian of the summed outputs with respect to the input,
correlate the N flattened Jacobians, and score ``-sum_i (log(v_i + k) + 1 / (v_i + k))`` over the
eigenvalues ``v`` of the correlation matrix (``k = 1e-5``): a network whose local linear maps differ
between inputs (weakly correlated Jacobians) scores higher.
"""

from __future__ import annotations

import torch

from nas import register_estimator
from nas.evaluate import ZeroCostEstimator, deterministic_mode
from nas.estimators._adapt import input_probe, run

K = 1e-5


@register_estimator("jacov")
class JacobianCovariance(ZeroCostEstimator):
    """Jacobian covariance over one batch (Mellor et al. 2020, v1).

    ``-sum(log(v + 1e-5) + 1 / (v + 1e-5))`` over the eigenvalues ``v`` of the correlation matrix of the per-input Jacobians, over one batch, in float64 (BatchNorm
    with the batch's statistics, dropout off).

    On a transformer (``bert``) token ids have no gradient, so the Jacobian is taken with respect
    to the embedding output (word + position + type embeddings after their LayerNorm). An input
    whose Jacobian is constant (a child whose output ignores the input) correlates fully with every
    other (the worst case), so the score stays finite."""

    def score(self, child, batch, space, arch) -> float:
        with deterministic_mode(child, batch_stats=True), input_probe(space, child, batch, "jacov") as probe:
            out = run(child, probe["batch"])
            (grad,) = torch.autograd.grad(out.sum(), probe["input"])
        jac = grad.reshape(len(grad), -1).double()
        corr = torch.nan_to_num(torch.corrcoef(jac), nan=1.0)
        corr.fill_diagonal_(1.0)
        v = torch.linalg.eigvalsh(corr).clamp_min(0.0)
        return float(-(torch.log(v + K) + 1.0 / (v + K)).sum())
