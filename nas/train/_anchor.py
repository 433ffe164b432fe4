"""MAGIC-A: the anchor child and the loss that aligns each sampled child with it.

The anchor is the best child seen on a fixed set of dev batches. Every ``anchor_every`` steps the
current child and the anchor are both scored on the same batches (the anchor is re-scored because
its shared weights moved), and the child replaces the anchor when it scores higher by ``margin``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from nas.supernet._space import Arch


class Anchor:
    def __init__(self, margin: float = 0.0):
        self.arch: Arch | None = None
        self.score = float("-inf")
        self.margin = margin
        self.replacements = 0

    def maybe_replace(self, child: Arch, child_score: float, anchor_score: float) -> bool:
        """Keep the better of (anchor, child); returns True when the child became the anchor."""
        self.score = anchor_score
        if self.arch is None or child_score > anchor_score + self.margin:
            self.arch, self.score = tuple(child), child_score
            self.replacements += 1
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"arch": list(self.arch) if self.arch else None, "score": self.score,
                "replacements": self.replacements}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.arch = tuple(state["arch"]) if state["arch"] else None
        self.score = float(state["score"])
        self.replacements = int(state["replacements"])


def alignment_loss(
    kind: str,
    problem: str,
    child: tuple[torch.Tensor, list[torch.Tensor] | None],
    anchor: tuple[torch.Tensor, list[torch.Tensor] | None],
    temperature: float = 1.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``logits``: KL(anchor || child) of temperature-softened outputs (MSE for regression);
    ``hidden``: mean per-layer MSE of hidden states. ``mask`` selects token positions (MLM).
    Computed in float32 whatever the model's precision (bf16/fp16 runs): a KL of two nearby
    distributions is a small difference of large terms."""
    if kind == "hidden":
        pairs = [(c.float(), a.float()) for c, a in zip(child[1], anchor[1]) if c.shape == a.shape]
        return torch.stack([F.mse_loss(c, a) for c, a in pairs]).mean()
    c_logits, a_logits = child[0].float(), anchor[0].float()
    if problem == "regression":
        return F.mse_loss(c_logits, a_logits)
    if mask is not None:
        c_logits, a_logits = c_logits[mask], a_logits[mask]
    c_logits = c_logits.reshape(-1, c_logits.shape[-1])
    a_logits = a_logits.reshape(-1, a_logits.shape[-1])
    log_p = F.log_softmax(c_logits / temperature, dim=-1)
    log_q = F.log_softmax(a_logits / temperature, dim=-1)
    return F.kl_div(log_p, log_q, log_target=True, reduction="batchmean") * temperature**2


def align_weight(step: int, lam: float, warmup: int, ramp: int) -> float:
    """Lambda at ``step``: 0 during warm-up, then a linear ramp up to ``lam``."""
    if step < warmup:
        return 0.0
    if ramp <= 0:
        return lam
    return lam * min(1.0, (step - warmup + 1) / ramp)
