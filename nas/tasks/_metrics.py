"""GLUE's official metrics, computed with scikit-learn and scipy.

An undefined correlation (constant predictions or labels) is reported as 0.0, "no skill", rather
than NaN, so that searchers can still rank such children.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy() if t.is_floating_point() else t.detach().cpu().numpy()


def _defined(value: float) -> float:
    return 0.0 if value is None or math.isnan(value) else float(value)


def classification(logits: torch.Tensor, labels: torch.Tensor, names: tuple[str, ...]) -> dict[str, float]:
    """``accuracy``, ``f1`` (positive class 1), ``mcc`` and ``top5_accuracy``, as named."""
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    keep = labels != -100
    logits, labels = logits[keep], labels[keep]
    preds, gold = _numpy(logits.argmax(-1)), _numpy(labels)
    out: dict[str, float] = {}
    for name in names:
        if name == "accuracy":
            out[name] = float(accuracy_score(gold, preds))
        elif name == "f1":
            out[name] = float(f1_score(gold, preds, pos_label=1, average="binary", zero_division=0.0))
        elif name == "mcc":
            out[name] = _defined(matthews_corrcoef(gold, preds))
        elif name == "top5_accuracy":
            top = logits.topk(min(5, logits.shape[-1]), dim=-1).indices
            out[name] = float((top == labels[:, None]).any(-1).float().mean())
        else:
            raise ValueError(f"unknown classification metric {name!r}")
    return out


def regression(predictions: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """``pearson``, ``spearman`` and their mean ``pearson_spearman_avg`` (GLUE's STS-B score)."""
    from scipy.stats import pearsonr, spearmanr

    pred, gold = _numpy(predictions.reshape(-1)), _numpy(labels.reshape(-1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: scipy warns and returns NaN
        pearson = _defined(pearsonr(pred, gold).statistic) if len(gold) > 1 else 0.0
        spearman = _defined(spearmanr(pred, gold).statistic) if len(gold) > 1 else 0.0
    return {"pearson": pearson, "spearman": spearman, "pearson_spearman_avg": (pearson + spearman) / 2}
