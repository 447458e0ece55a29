"""Margin loss (Wu et al. 2017, "Sampling matters in deep embedding learning")."""

from __future__ import annotations

import torch
from torch import nn

from .base import IndicesTuple, TupleLoss, pair_distance, to_pairs, zero_loss


class MarginLoss(TupleLoss):
    """Margin loss: relu(margin + d(a,p) - beta) for positive pairs and
    relu(margin - d(a,n) + beta) for negative pairs, averaged over the non-zero terms,
    plus ``nu * beta``.

    Args:
        margin: half-width of the band around beta (distance units; default 0.2).
        beta: initial boundary between positive and negative distances (default 1.2).
        learn_beta: make beta a learnable parameter (default True).
        num_classes: one beta per class when given (labels must be 0..num_classes-1);
            default None: a single beta.
        nu: weight of the beta regulariser (default 0.0).
        normalize: L2-normalise embeddings first (default True).
    """

    consumes = "triplets"

    def __init__(
        self,
        margin: float = 0.2,
        beta: float = 1.2,
        learn_beta: bool = True,
        num_classes: int | None = None,
        nu: float = 0.0,
        normalize: bool = True,
    ) -> None:
        super().__init__(normalize)
        self.margin = float(margin)
        self.nu = float(nu)
        init = torch.full((num_classes or 1,), float(beta))
        self.beta = nn.Parameter(init, requires_grad=bool(learn_beta))
        self.per_class = num_classes is not None

    def _beta(self, labels: torch.Tensor | None, a: torch.Tensor) -> torch.Tensor:
        if not self.per_class:
            return self.beta[0]
        if labels is None:
            raise ValueError("MarginLoss with num_classes needs labels")
        return self.beta[labels[a].long()]

    def compute(
        self,
        x: torch.Tensor,
        r: torch.Tensor,
        indices_tuple: IndicesTuple,
        labels: torch.Tensor | None,
        ref_labels: torch.Tensor | None,
    ) -> torch.Tensor:
        a1, p, a2, n = to_pairs(indices_tuple) if len(indices_tuple) == 4 else (
            indices_tuple[0], indices_tuple[1], indices_tuple[0], indices_tuple[2]
        )
        if len(a1) == 0 and len(a2) == 0:
            return zero_loss(x) + zero_loss(self.beta)
        pos = (self.margin + pair_distance(x[a1], r[p]) - self._beta(labels, a1)).relu()
        neg = (self.margin - pair_distance(x[a2], r[n]) + self._beta(labels, a2)).relu()
        k = int((pos > 0).sum()) + int((neg > 0).sum())
        total = pos.sum() + neg.sum()
        beta_reg = self.nu * (self._beta(labels, a1).sum() + self._beta(labels, a2).sum())
        if k == 0:
            return zero_loss(x) + zero_loss(self.beta)
        return (total + beta_reg) / k
