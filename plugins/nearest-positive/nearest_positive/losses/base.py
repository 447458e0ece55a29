"""Base of the package's reference losses: PML's calling convention, without PML."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IndicesTuple = tuple[torch.Tensor, ...]


def to_triplets(t: IndicesTuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(a, p, n) from triplets or pairs (pairs: every positive joined with every negative
    of the same anchor, as PML does)."""
    if len(t) == 3:
        return t[0], t[1], t[2]
    a1, p, a2, n = t
    pi, ni = torch.nonzero(a1.unsqueeze(1) == a2.unsqueeze(0), as_tuple=True)
    return a1[pi], p[pi], n[ni]


def to_pairs(t: IndicesTuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(a1, p, a2, n) from pairs or triplets (triplets: their distinct (a, p), (a, n))."""
    if len(t) == 4:
        return t[0], t[1], t[2], t[3]
    a, p, n = t

    def uniq(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if len(x) == 0:
            return x, y
        u = torch.unique(torch.stack([x, y]), dim=1)
        return u[0], u[1]

    a1, pp = uniq(a, p)
    a2, nn_ = uniq(a, n)
    return a1, pp, a2, nn_


class TupleLoss(nn.Module):
    """A loss over index tuples: ``forward(embeddings, labels, indices_tuple=None,
    ref_emb=None, ref_labels=None)``, PML's convention. Without ``indices_tuple`` every
    valid tuple of the batch is used.

    Args:
        normalize: L2-normalise embeddings before measuring distances (default True).
    """

    #: the tuple form this loss consumes natively: "triplets" or "pairs"
    consumes: str = "triplets"

    def __init__(self, normalize: bool = True) -> None:
        super().__init__()
        self.normalize = normalize

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor | None = None,
        indices_tuple: IndicesTuple | None = None,
        ref_emb: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if ref_emb is None:
            ref_emb, ref_labels = embeddings, labels
        if indices_tuple is None:
            if labels is None:
                raise ValueError(f"{type(self).__name__} needs labels or indices_tuple")
            from ..mining import Miner, MiningOptions

            miner = Miner(MiningOptions(positives="all", negatives="all", output=self.consumes))
            if ref_emb is embeddings:
                indices_tuple = miner(embeddings, labels)
            else:
                indices_tuple = miner(embeddings, labels, ref_emb, ref_labels)
        x = F.normalize(embeddings, dim=1) if self.normalize else embeddings
        r = x if ref_emb is embeddings else (
            F.normalize(ref_emb, dim=1) if self.normalize else ref_emb
        )
        return self.compute(x, r, indices_tuple, labels, ref_labels)

    def compute(
        self,
        x: torch.Tensor,
        r: torch.Tensor,
        indices_tuple: IndicesTuple,
        labels: torch.Tensor | None,
        ref_labels: torch.Tensor | None,
    ) -> torch.Tensor:
        raise NotImplementedError


def pair_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Euclidean distance of aligned rows, with a gradient that stays finite at 0."""
    return ((x - y).pow(2).sum(1) + 1e-12).sqrt()


def zero_loss(x: torch.Tensor) -> torch.Tensor:
    """A zero that keeps the graph connected (backward works, gradients are zero)."""
    return x.sum() * 0.0
