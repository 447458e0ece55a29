"""Negatives that complete (anchor, positive) rows into tuples, tile by tile."""

from __future__ import annotations

import math

import torch

from .selection import Prepared
from .tiling import tiles

NEGATIVE_STRATEGIES: tuple[str, ...] = ("all", "semihard", "hardest", "distance-weighted")

#: Wu et al. 2017: distances are clipped below at 0.5 before weighting, and only
#: negatives closer than 1.4 (where the margin loss is non-zero) are sampled.
DW_CUTOFF = 0.5
DW_NONZERO_LOSS_CUTOFF = 1.4


def _negative_scores(p: Prepared, anchors: torch.Tensor, fill: float) -> torch.Tensor:
    s = p.space.scores(anchors)
    s.masked_fill_(p.labels[anchors].unsqueeze(1) == p.ref_labels.unsqueeze(0), fill)
    return s



def all_negatives(p: Prepared, anchors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (anchor, negative) pair for the given distinct anchors: (anchor, neg)."""
    out_a, out_n = [], []
    for rows in tiles(len(anchors), p.rows_per_tile, anchors.device):
        a = anchors[rows]
        neg = p.labels[a].unsqueeze(1) != p.ref_labels.unsqueeze(0)
        r, c = torch.nonzero(neg, as_tuple=True)
        out_a.append(a[r])
        out_n.append(c)
    if not out_a:
        e = torch.zeros(0, dtype=torch.long, device=anchors.device)
        return e, e
    return torch.cat(out_a), torch.cat(out_n)


def choose_negatives(
    p: Prepared,
    anchors: torch.Tensor,
    pos_scores: torch.Tensor | None,
    strategy: str,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One negative per row (anchor[i], with positive score pos_scores[i]).

    Returns (negative index, has-negative mask).
    semihard: the closest negative farther than the row's positive; when every negative is
        closer than the positive, the farthest negative (the one nearest to being
        semi-hard, as TensorFlow's semi-hard triplet loss does).
    hardest: the closest negative.
    distance-weighted: sampled with weight min(lambda, 1/q(d)) where q is the density of
        distances between random points on the unit sphere in d dimensions (Wu et al. 2017),
        d clipped below at 0.5, among negatives closer than 1.4; if none is, uniform
        among all negatives.
    """
    n = len(anchors)
    device = anchors.device
    out = torch.zeros(n, dtype=torch.long, device=device)
    ok = torch.zeros(n, dtype=torch.bool, device=device)
    dim = p.space.anchors.shape[1]
    for rows in tiles(n, p.rows_per_tile, device):
        a = anchors[rows]
        if strategy == "hardest":
            s = _negative_scores(p, a, float("inf"))
            val, idx = s.min(1)
            good = torch.isfinite(val)
        elif strategy == "semihard":
            assert pos_scores is not None
            s = _negative_scores(p, a, float("nan"))
            is_neg = ~torch.isnan(s)
            farther = s > pos_scores[rows].unsqueeze(1)  # nan compares False
            semi = torch.where(farther, s, torch.full_like(s, float("inf")))
            sval, sidx = semi.min(1)
            far = torch.where(is_neg, s, torch.full_like(s, float("-inf")))
            _, fidx = far.max(1)
            idx = torch.where(torch.isfinite(sval), sidx, fidx)
            good = is_neg.any(1)
        else:  # distance-weighted, Gumbel-max sampling of the normalised weights
            s = _negative_scores(p, a, float("nan"))
            is_neg = ~torch.isnan(s)
            d = p.space.unit_sphere_distance(s, a).clamp_min(DW_CUTOFF)
            log_w = (2.0 - dim) * torch.log(d) - (dim - 3) / 2.0 * torch.log(
                (1.0 - 0.25 * d * d).clamp_min(1e-8)
            )
            eligible = is_neg & (d < DW_NONZERO_LOSS_CUTOFF)
            log_w = torch.where(eligible, log_w, torch.full_like(log_w, float("-inf")))
            # as in Wu et al.'s code: weights relative to the row maximum (no overflow)
            log_w = log_w - log_w.max(1, keepdim=True).values.nan_to_num(0.0, 0.0, 0.0)
            log_w = torch.nan_to_num(log_w, nan=float("-inf"))
            has_eligible = eligible.any(1, keepdim=True)
            blocked = torch.full_like(log_w, -math.inf)
            uniform = torch.where(is_neg, torch.zeros_like(log_w), blocked)
            log_w = torch.where(has_eligible, log_w, uniform)
            u = torch.rand(s.shape, generator=generator, device=device, dtype=s.dtype)
            gumbel = -torch.log(-torch.log(u.clamp(1e-20, 1.0 - 1e-7)))
            _, idx = (log_w + gumbel).max(1)
            good = is_neg.any(1)
        out[rows] = idx
        ok[rows] = good
    return out, ok
