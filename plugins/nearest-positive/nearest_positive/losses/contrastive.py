"""Contrastive loss (Hadsell et al. 2006) over positive and negative pairs, as PML's."""

from __future__ import annotations

import torch

from .base import IndicesTuple, PairMetric, TupleLoss, avg_nonzero, to_pairs, zero_loss


class ContrastiveLoss(TupleLoss):
    """relu(d - pos_margin) for positive pairs plus relu(neg_margin - d) for negative
    pairs, each averaged over its non-zero terms (PML's ContrastiveLoss with its default
    AvgNonZeroReducer, same value and gradient).

    Args:
        pos_margin: positive pairs closer than this cost nothing (distance; default 0.0).
        neg_margin: negative pairs farther than this cost nothing (distance; default 1.0).
        squared: square both hinges, as in Hadsell et al.'s original loss (default False,
            PML's form).
        normalize: L2-normalise embeddings first (default True).
    """

    consumes = "pairs"

    def __init__(
        self,
        pos_margin: float = 0.0,
        neg_margin: float = 1.0,
        squared: bool = False,
        normalize: bool = True,
    ) -> None:
        super().__init__(normalize)
        self.pos_margin = float(pos_margin)
        self.neg_margin = float(neg_margin)
        self.squared = bool(squared)

    def compute(
        self,
        x: torch.Tensor,
        r: torch.Tensor,
        indices_tuple: IndicesTuple,
        labels: torch.Tensor | None,
        ref_labels: torch.Tensor | None,
    ) -> torch.Tensor:
        a1, p, a2, n = to_pairs(indices_tuple)
        total = zero_loss(x)
        dist = PairMetric(x, r, len(a1) + len(a2))
        if len(a1):
            pos = (dist(a1, p) - self.pos_margin).relu()
            total = total + avg_nonzero(pos.square() if self.squared else pos, x)
        if len(a2):
            neg = (self.neg_margin - dist(a2, n)).relu()
            total = total + avg_nonzero(neg.square() if self.squared else neg, x)
        return total
