"""Contrastive loss (Hadsell et al. 2006) over positive and negative pairs."""

from __future__ import annotations

import torch

from .base import IndicesTuple, TupleLoss, pair_distance, to_pairs, zero_loss


class ContrastiveLoss(TupleLoss):
    """relu(d - pos_margin)^2 for positive pairs, relu(neg_margin - d)^2 for negative
    pairs, averaged over all pairs.

    Args:
        pos_margin: positive pairs closer than this cost nothing (distance; default 0.0).
        neg_margin: negative pairs farther than this cost nothing (distance; default 1.0).
        normalize: L2-normalise embeddings first (default True).
    """

    consumes = "pairs"

    def __init__(self, pos_margin: float = 0.0, neg_margin: float = 1.0, normalize: bool = True):
        super().__init__(normalize)
        self.pos_margin = float(pos_margin)
        self.neg_margin = float(neg_margin)

    def compute(
        self,
        x: torch.Tensor,
        r: torch.Tensor,
        indices_tuple: IndicesTuple,
        labels: torch.Tensor | None,
        ref_labels: torch.Tensor | None,
    ) -> torch.Tensor:
        a1, p, a2, n = to_pairs(indices_tuple)
        count = len(a1) + len(a2)
        if count == 0:
            return zero_loss(x)
        pos = (pair_distance(x[a1], r[p]) - self.pos_margin).relu().pow(2)
        neg = (self.neg_margin - pair_distance(x[a2], r[n])).relu().pow(2)
        return (pos.sum() + neg.sum()) / count
