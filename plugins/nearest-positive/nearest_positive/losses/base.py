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
    """(a1, p, a2, n) from pairs or triplets (triplets: (a, p, a, n), one positive and one
    negative pair per triplet, repeats kept, as PML's convert_to_pairs)."""
    if len(t) == 4:
        return t[0], t[1], t[2], t[3]
    a, p, n = t
    return a, p, a, n


def unique_pairs(a: torch.Tensor, b: torch.Tensor, n_ref: int) -> tuple[torch.Tensor, ...]:
    """Distinct (a, b) pairs, ascending: a pair given twice counts once, as in a mask."""
    if len(a) == 0:
        return a, b
    key = torch.unique(a * n_ref + b)
    return key // n_ref, key % n_ref


def avg_nonzero(terms: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Mean of the positive terms (PML's AvgNonZeroReducer); a connected zero if none."""
    keep = terms > 0
    if not bool(keep.any()):
        return zero_loss(like)
    return terms[keep].mean()


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
            from ..config import SamplerConfig
            from ..mining import Miner

            miner = Miner(SamplerConfig(output=self.consumes), positives="all")
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


def _safe_sqrt(sq: torch.Tensor) -> torch.Tensor:
    """sqrt that is exactly 0 at 0 (a hinge at 0 then counts equal rows as zero terms),
    with a zero, finite gradient there."""
    tiny = torch.finfo(sq.dtype).tiny
    return torch.where(sq > 0, sq.clamp_min(tiny).sqrt(), torch.zeros_like(sq))


def pair_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Euclidean distance of aligned rows."""
    return _safe_sqrt((x - y).pow(2).sum(1))


#: Pairs per (row, reference row) entry from which one B x M matrix (a matmul, then
#: indexing, as PML computes every loss) beats gathering two d-vectors per pair: the
#: all-negatives tuples number about B x M, gathering them is memory traffic of
#: B x M x d with its backward scatter.
MATRIX_MIN_PAIRS_PER_ENTRY = 1 / 16


class PairMetric:
    """Euclidean distances (or dot products) of index pairs (rows of x, rows of r)."""

    def __init__(self, x: torch.Tensor, r: torch.Tensor, n_pairs: int, dot: bool = False):
        self.x, self.r, self.dot = x, r, dot
        self.mat: torch.Tensor | None = None
        if n_pairs >= MATRIX_MIN_PAIRS_PER_ENTRY * x.shape[0] * r.shape[0]:
            prod = x @ r.t()
            if dot:
                self.mat = prod
            else:
                sq = (x * x).sum(1, keepdim=True) + (r * r).sum(1) - 2.0 * prod
                self.mat = _safe_sqrt(sq.clamp_min(0.0))

    def __call__(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        if self.mat is not None:
            return self.mat[rows, cols]
        if self.dot:
            return (self.x[rows] * self.r[cols]).sum(1)
        return pair_distance(self.x[rows], self.r[cols])


def zero_loss(x: torch.Tensor) -> torch.Tensor:
    """A zero that keeps the graph connected (backward works, gradients are zero)."""
    return x.sum() * 0.0
