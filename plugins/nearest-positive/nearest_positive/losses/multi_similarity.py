"""Multi-similarity loss (Wang et al. 2019) on the given pairs (no internal mining)."""

from __future__ import annotations

import torch

from .base import IndicesTuple, PairMetric, TupleLoss, to_pairs, unique_pairs, zero_loss


def _log1p_sum_exp(t: torch.Tensor, rows: torch.Tensor, n: int) -> torch.Tensor:
    """Per row: log(1 + sum of exp(t) over the row's entries) (0 for rows without any),
    shifted by the row maximum so that large exponents do not overflow."""
    top = t.new_zeros(n).scatter_reduce(0, rows, t.detach(), "amax", include_self=True)
    s = t.new_zeros(n).index_add(0, rows, torch.exp(t - top[rows]))
    return top + torch.log(torch.exp(-top) + s)


class MultiSimilarityLoss(TupleLoss):
    """Per anchor: 1/alpha log(1 + sum_p exp(-alpha (S_ap - base)))
    + 1/beta log(1 + sum_n exp(beta (S_an - base))), S = cosine similarity; the mean over
    every row of ``embeddings`` (0 for rows without a pair). A pair given twice counts
    once. This is PML's MultiSimilarityLoss (mask-based, MeanReducer): same value and
    gradient.

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
        b, m = x.shape[0], r.shape[0]
        a1, p = unique_pairs(a1, p, m)
        a2, n = unique_pairs(a2, n, m)
        sim = PairMetric(x, r, len(a1) + len(a2), dot=True)
        sp, sn = sim(a1, p), sim(a2, n)
        pos = _log1p_sum_exp(-self.alpha * (sp - self.base), a1, b) / self.alpha
        neg = _log1p_sum_exp(self.beta * (sn - self.base), a2, b) / self.beta
        return (pos + neg).mean()
