"""Distances on row tiles.

Every strategy ranks reference rows by a *score* that is monotone in the distance and
cheap to get from one matmul: ``|r|^2 - 2 a.r`` for the Euclidean kinds (the anchor's own
``|a|^2`` does not change a row's ranking) and ``-a.r`` for cosine. ``to_distance`` turns
scores back into distances for the few entries that are reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

DISTANCES: tuple[str, ...] = ("euclidean", "squared_euclidean", "cosine")


def work_dtype(dtype: torch.dtype) -> torch.dtype:
    """float16/bfloat16 are computed (and accumulated) in float32; float64 stays."""
    return torch.float64 if dtype == torch.float64 else torch.float32


@dataclass
class Space:
    """Prepared (detached, upcast, optionally normalised) anchors and references."""

    kind: str
    anchors: torch.Tensor
    refs: torch.Tensor
    anchor_sq: torch.Tensor
    ref_sq: torch.Tensor

    @classmethod
    def build(
        cls, embeddings: torch.Tensor, refs: torch.Tensor | None, kind: str, normalize: bool
    ) -> Space:
        dtype = work_dtype(embeddings.dtype)
        # cosine is defined on directions, so it always normalises.
        unit = normalize or kind == "cosine"

        def prep(x: torch.Tensor) -> torch.Tensor:
            x = x.detach().to(dtype)
            return F.normalize(x, dim=1) if unit else x

        a = prep(embeddings)
        r = a if refs is None else prep(refs)
        if kind == "cosine":
            a_sq = torch.zeros(a.shape[0], dtype=dtype, device=a.device)
            r_sq = torch.zeros(r.shape[0], dtype=dtype, device=r.device)
        else:
            a_sq = (a * a).sum(1)
            r_sq = a_sq if refs is None else (r * r).sum(1)
        return cls(kind, a, r, a_sq, r_sq)

    def scores(self, rows: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Scores of anchors `rows` against every reference: (len(rows), M).

        `out` (len(rows) x M, the work dtype) is reused when given: one scratch buffer for
        all tiles keeps the allocator from holding several tiles' worth of memory.
        """
        a = self.anchors[rows]
        if self.kind == "cosine":
            return torch.mm(a, self.refs.t(), out=out).neg_()
        return torch.addmm(
            self.ref_sq.unsqueeze(0), a, self.refs.t(), beta=1.0, alpha=-2.0, out=out
        )

    def to_distance(
        self, scores: torch.Tensor, rows: torch.Tensor, inplace: bool = False
    ) -> torch.Tensor:
        """Distances from scores; `rows` are the anchors the scores belong to (broadcast).
        `inplace` overwrites `scores` (no block-sized copies on large tiles)."""
        if self.kind == "cosine":
            return scores.add_(1.0) if inplace else scores + 1.0
        shift = self.anchor_sq[rows].view(-1, *([1] * (scores.dim() - 1)))
        sq = scores.add_(shift).clamp_min_(0) if inplace else (scores + shift).clamp_min(0)
        if self.kind != "euclidean":
            return sq
        return sq.sqrt_() if inplace else sq.sqrt()

    def pair_distance(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Distances of explicit (anchor, reference) pairs, computed directly."""
        a = self.anchors[rows]
        r = self.refs[cols]
        if self.kind == "cosine":
            return 1.0 - (a * r).sum(1)
        sq = ((a - r) ** 2).sum(1)
        return sq.sqrt() if self.kind == "euclidean" else sq

    def unit_sphere_distance(self, scores: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Euclidean distance on the unit sphere (needs normalised rows)."""
        if self.kind == "cosine":
            return (2.0 * (scores + 1.0)).clamp_min(0).sqrt()
        sq = (scores + self.anchor_sq[rows].unsqueeze(1)).clamp_min(0)
        return sq.sqrt()
