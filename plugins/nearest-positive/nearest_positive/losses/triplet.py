"""Triplet margin loss: mean of max(0, d(a, p) - d(a, n) + margin)."""

from __future__ import annotations

import torch

from .base import IndicesTuple, PairMetric, TupleLoss, to_triplets, zero_loss


class TripletLoss(TupleLoss):
    """Triplet margin loss on Euclidean distances.

    Args:
        margin: required gap between anchor-negative and anchor-positive distances
            (distance units; default 0.2).
        average_nonzero: average over triplets with a non-zero loss only, as PML's
            TripletMarginLoss does (default True); False averages over all triplets.
        normalize: L2-normalise embeddings first (default True).
    """

    consumes = "triplets"

    def __init__(self, margin: float = 0.2, average_nonzero: bool = True, normalize: bool = True):
        super().__init__(normalize)
        self.margin = float(margin)
        self.average_nonzero = bool(average_nonzero)

    def compute(
        self,
        x: torch.Tensor,
        r: torch.Tensor,
        indices_tuple: IndicesTuple,
        labels: torch.Tensor | None,
        ref_labels: torch.Tensor | None,
    ) -> torch.Tensor:
        a, p, n = to_triplets(indices_tuple)
        if len(a) == 0:
            return zero_loss(x)
        dist = PairMetric(x, r, 2 * len(a))
        terms = (dist(a, p) - dist(a, n) + self.margin).relu()
        if self.average_nonzero:
            k = int((terms > 0).sum())
            return terms.sum() / k if k else zero_loss(x)
        return terms.mean()
