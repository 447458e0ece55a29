"""Margin loss (Wu et al. 2017, "Sampling matters in deep embedding learning"), as PML's."""

from __future__ import annotations

import torch
from torch import nn

from .base import IndicesTuple, PairMetric, TupleLoss, to_triplets, zero_loss


class MarginLoss(TupleLoss):
    """Per triplet relu(margin + d(a,p) - beta) + relu(margin - d(a,n) + beta), summed and
    divided by the number of non-zero terms, plus the beta regulariser: PML's MarginLoss
    (DivisorReducer), same value and gradients (embeddings and beta).

    The regulariser exists only with ``learn_beta`` (as in PML): ``nu * beta`` added as is
    with one beta; with per-class betas, ``nu`` times the sum of the anchors' betas over
    the triplets, divided like the margin terms. Pairs are joined into triplets first
    (every positive with every negative of the same anchor), as PML does.

    Args:
        margin: half-width of the band around beta (distance units; default 0.2).
        beta: initial boundary between positive and negative distances (default 1.2).
        learn_beta: make beta a learnable parameter (default True; PML's default is
            False).
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
        self.learn_beta = bool(learn_beta)
        init = torch.full((num_classes or 1,), float(beta))
        self.beta = nn.Parameter(init, requires_grad=self.learn_beta)
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
        a, p, n = to_triplets(indices_tuple)
        zero = zero_loss(x) + zero_loss(self.beta)
        if len(a) == 0:
            return zero
        beta = self._beta(labels, a).to(x.dtype)
        dist = PairMetric(x, r, 2 * len(a))
        pos = (self.margin + dist(a, p) - beta).relu()
        neg = (self.margin - dist(a, n) + beta).relu()
        divisor = int((pos > 0).sum()) + int((neg > 0).sum())
        loss = (pos + neg).sum() / divisor + zero if divisor else zero
        if not self.learn_beta or not self.nu:
            return loss
        if not self.per_class:
            return loss + self.nu * beta
        return loss + self.nu * beta.sum() / divisor if divisor else loss
