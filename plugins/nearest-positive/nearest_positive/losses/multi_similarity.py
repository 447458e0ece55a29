"""Multi-similarity loss (Wang et al. 2019) on the given pairs (no internal mining)."""

from __future__ import annotations

import torch

from .base import IndicesTuple, TupleLoss, to_pairs, zero_loss


class MultiSimilarityLoss(TupleLoss):
    """Per anchor: 1/alpha log(1 + sum_p exp(-alpha (S_ap - base)))
    + 1/beta log(1 + sum_n exp(beta (S_an - base))), S = cosine similarity; mean over
    anchors with at least one pair.

    Args:
        alpha: positive-pair scale (default 2.0).
        beta: negative-pair scale (default 50.0).
        base: similarity offset lambda (default 0.5).
    """

    consumes = "pairs"

    def __init__(self, alpha: float = 2.0, beta: float = 50.0, base: float = 0.5):
        super().__init__(normalize=True)  # cosine similarity needs unit rows
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.base = float(base)

    def compute(
        self,
        x: torch.Tensor,
        r: torch.Tensor,
        indices_tuple: IndicesTuple,
        labels: torch.Tensor | None,
        ref_labels: torch.Tensor | None,
    ) -> torch.Tensor:
        a1, p, a2, n = to_pairs(indices_tuple)
        if len(a1) + len(a2) == 0:
            return zero_loss(x)
        b = x.shape[0]
        sp = (x[a1] * r[p]).sum(1)
        sn = (x[a2] * r[n]).sum(1)
        pos_sum = x.new_zeros(b).index_add(0, a1, torch.exp(-self.alpha * (sp - self.base)))
        neg_sum = x.new_zeros(b).index_add(0, a2, torch.exp(self.beta * (sn - self.base)))
        per_anchor = torch.log1p(pos_sum) / self.alpha + torch.log1p(neg_sum) / self.beta
        used = torch.zeros(b, dtype=torch.bool, device=x.device)
        used[a1] = True
        used[a2] = True
        return per_anchor[used].mean()
