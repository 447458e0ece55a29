"""Negatives that complete (anchor, positive) rows into tuples.

Every strategy computes one score block per tile of *distinct* anchors (one matmul row
per anchor, never one per pair): with positives="all" an anchor has many pairs, and a
row per pair multiplied the matmul and the mask work by the number of positives.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import torch

from .selection import Prepared
from .tiling import tile_rows, tiles

NEGATIVE_STRATEGIES: tuple[str, ...] = ("all", "semihard", "hardest", "distance-weighted")

#: Wu et al. 2017: distances are clipped below at 0.5 before weighting, and only
#: negatives closer than 1.4 (where the margin loss is non-zero) are sampled.
DW_CUTOFF = 0.5
DW_NONZERO_LOSS_CUTOFF = 1.4

#: Semi-hard with at most this many pairs per anchor compares the anchor's score row
#: with each pair's positive score (one pass per pair slot); above it, each row is sorted
#: once and every pair is placed by binary search. Measured on one CPU thread at B = 512
#: and 2048: the two cost the same at 12 to 15 pairs per anchor.
SEMIHARD_SLOT_MAX = 12

#: Anchor rows of a tile: an index tensor, or a slice when the tile is a run of rows.
Rows = torch.Tensor | slice


class PairGroups(NamedTuple):
    """(anchor, positive) rows grouped by their distinct anchor."""

    anchors: torch.Tensor  # (U,) distinct anchors, ascending
    start: torch.Tensor  # (U + 1,) offsets of each anchor's rows in `order`
    order: torch.Tensor  # (P,) rows sorted by anchor (stable)
    group: torch.Tensor  # (P,) index of each row's anchor in `anchors`
    slot: torch.Tensor  # (P,) rank of each row among its anchor's rows
    single: bool  # one row per anchor, rows in anchor order (the identity grouping)


class Negatives(NamedTuple):
    """One negative per row: its reference index, whether the row has any negative (else
    the index is meaningless), and its score (the units of Space.scores)."""

    index: torch.Tensor
    ok: torch.Tensor
    score: torch.Tensor


def _empty(p: Prepared, n: int) -> Negatives:
    device = p.space.anchors.device
    return Negatives(
        torch.zeros(n, dtype=torch.long, device=device),
        torch.zeros(n, dtype=torch.bool, device=device),
        p.space.anchors.new_zeros(n),
    )


def group_pairs(a: torch.Tensor, distinct: bool = False) -> PairGroups:
    """Group rows by anchor; `distinct` promises ascending distinct anchors (one row
    each, as every positive strategy but "all" gives), which skips the sort."""
    if distinct:
        idx = torch.arange(len(a), device=a.device)
        start = torch.arange(len(a) + 1, device=a.device)
        return PairGroups(a, start, idx, idx, torch.zeros_like(idx), True)
    anchors, group, count = torch.unique(a, return_inverse=True, return_counts=True)
    order = torch.argsort(group, stable=True)
    start = torch.cat([count.new_zeros(1), torch.cumsum(count, 0)])
    slot = torch.empty_like(order)
    slot[order] = torch.arange(len(a), device=a.device) - start[group[order]]
    return PairGroups(anchors, start, order, group, slot, False)


def _rows(p: Prepared, n: int, entry_bytes: int) -> int:
    """Distinct anchors per tile: the requested tile size, else what fits the budget."""
    return tile_rows(n, p.space.refs.shape[0], p.tile_size, entry_bytes, mask=False)


def _negative_mask(p: Prepared, anchors: torch.Tensor) -> torch.Tensor:
    return p.labels[anchors].unsqueeze(1) != p.ref_labels.unsqueeze(0)


def _same_mask(p: Prepared, anchors: Rows) -> torch.Tensor:
    return p.labels[anchors].unsqueeze(1) == p.ref_labels.unsqueeze(0)


def _tile_pairs(
    g: PairGroups, rows: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """(pair rows, their local anchor row, their slot, most pairs per anchor) of a tile."""
    if g.single:
        return rows, rows - rows[0], torch.zeros_like(rows), 1
    lo, hi = int(g.start[rows[0]]), int(g.start[rows[-1] + 1])
    pairs = g.order[lo:hi]
    kmax = int((g.start[rows + 1] - g.start[rows]).max())
    return pairs, g.group[pairs] - rows[0], g.slot[pairs], kmax


def _per_pair(
    values: torch.Tensor, local: torch.Tensor, slot: torch.Tensor, n_rows: int, kmax: int
) -> torch.Tensor:
    """Pair values laid out as (anchor row, slot), the shape batched searchsorted takes."""
    out = values.new_zeros((n_rows, kmax))
    out[local, slot] = values
    return out


def _cat(parts: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    if len(parts) == 1:  # the usual single tile: no copy
        return parts[0]
    if not parts:
        return torch.zeros(0, dtype=torch.long, device=device)
    return torch.cat(parts)


def all_negatives(
    p: Prepared, anchors: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (anchor, negative) pair of the given distinct anchors (None: every anchor,
    0..B-1), row-major: PML's get_all_pairs_indices order."""
    device = p.labels.device
    n = p.labels.shape[0] if anchors is None else len(anchors)
    out_a, out_n = [], []
    for rows in tiles(n, p.rows_per_tile, device):
        a = rows if anchors is None else anchors[rows]
        r, c = torch.nonzero(_negative_mask(p, a), as_tuple=True)
        out_a.append(r.add_(rows[0]) if anchors is None else a[r])
        out_n.append(c)
    return _cat(out_a, device), _cat(out_n, device)


def all_negative_triplets(
    p: Prepared, a: torch.Tensor, pos: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every (a, p) row joined with every negative of its anchor: rows in order, negatives
    ascending. One label mask per tile of rows; its nonzero entries are the triplets."""
    out_a, out_p, out_n = [], [], []
    for rows in tiles(len(a), p.rows_per_tile, a.device):
        r, c = torch.nonzero(_negative_mask(p, a[rows]), as_tuple=True)
        out_a.append(a[rows][r])
        out_p.append(pos[rows][r])
        out_n.append(c)
    return _cat(out_a, a.device), _cat(out_p, a.device), _cat(out_n, a.device)


def negative_distance_sums(
    p: Prepared, anchors: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of distances to every negative, number of negatives) per distinct anchor,
    from one score block per tile (diagnostics of the all-negatives strategy)."""
    sums = p.space.anchors.new_zeros(len(anchors))
    counts = torch.zeros(len(anchors), dtype=torch.long, device=anchors.device)
    for rows in tiles(len(anchors), p.rows_per_tile, anchors.device):
        a = anchors[rows]
        same = _same_mask(p, a)
        d = p.space.to_distance(p.space.scores(a), a, inplace=True)
        sums[rows] = d.masked_fill_(same, 0.0).sum(1)
        counts[rows] = same.shape[1] - same.sum(1)
    return sums, counts


def _row_tiles(p: Prepared, anchors: torch.Tensor, rows: int) -> Iterator[Rows]:
    """Tiles of distinct ascending anchors; when they are every anchor, as slices (views:
    no index copies, which small batches feel)."""
    every = len(anchors) == p.space.anchors.shape[0]
    for lo in range(0, len(anchors), rows):
        yield slice(lo, lo + rows) if every else anchors[lo : lo + rows]


def hardest_negatives(p: Prepared, anchors: torch.Tensor) -> Negatives:
    """The closest negative of each distinct anchor (ascending); ties: smallest index."""
    parts = []
    for a in _row_tiles(p, anchors, p.rows_per_tile):
        s = p.space.scores(a).masked_fill_(_same_mask(p, a), float("inf"))  # type: ignore[arg-type]
        val, idx = s.min(1)
        parts.append(Negatives(idx, val < float("inf"), val))
    return _cat_negatives(p, parts)


def _cat_negatives(p: Prepared, parts: list[Negatives]) -> Negatives:
    if len(parts) == 1:  # the usual single tile: no copy
        return parts[0]
    if not parts:
        return _empty(p, 0)
    return Negatives(*(torch.cat(x) for x in zip(*parts, strict=True)))


def semihard_negatives(
    p: Prepared, a: torch.Tensor, pos_scores: torch.Tensor, distinct: bool = False
) -> Negatives:
    """A negative per row (a[i], positive score pos_scores[i]); `distinct`: see
    group_pairs.

    The closest negative farther than the row's positive (score strictly greater); when
    every negative is closer, the farthest negative (the one nearest to being semi-hard,
    as TensorFlow's semi-hard triplet loss does). Ties: the smallest index.
    """
    elem = p.space.refs.element_size()
    if distinct:
        return _semihard_single(p, a, pos_scores, _rows(p, len(a), 2 * elem + 2))
    r = _empty(p, len(a))
    if len(a) == 0:
        return r
    g = group_pairs(a)
    inf = float("inf")
    for rows in tiles(len(g.anchors), _rows(p, len(g.anchors), 2 * elem + 9), a.device):
        anc = g.anchors[rows]
        pairs, local, slot, kmax = _tile_pairs(g, rows)
        # non-negatives at -inf: never the farthest, never above a positive score
        s = p.space.scores(anc).masked_fill_(_same_mask(p, anc), -inf)
        far_score, far = s.max(1)  # the fallback: first index of the maximum
        has = far_score > -inf
        q = pos_scores[pairs].to(s.dtype)
        if kmax <= SEMIHARD_SLOT_MAX:
            q_rows = _per_pair(q, local, slot, len(rows), kmax)
            best = torch.empty((len(rows), kmax), dtype=torch.long, device=a.device)
            found = torch.empty((len(rows), kmax), dtype=torch.bool, device=a.device)
            for j in range(kmax):
                val, idx = torch.where(s > q_rows[:, j : j + 1], s, inf).min(1)
                best[:, j], found[:, j] = idx, val < inf
            idx, semi = best[local, slot], found[local, slot]
        else:
            sorted_s, sorted_idx = torch.sort(s, dim=1, stable=True)  # ties keep index order
            q_rows = _per_pair(q, local, slot, len(rows), kmax)
            rank = torch.searchsorted(sorted_s, q_rows, right=True)[local, slot]
            semi = rank < s.shape[1]  # some score lies above: a negative's
            idx = sorted_idx[local, rank.clamp(max=s.shape[1] - 1)]
        idx = torch.where(semi, idx, far[local])
        r.index[pairs], r.ok[pairs], r.score[pairs] = idx, has[local], s[local, idx]
    return r


def _semihard_single(
    p: Prepared, a: torch.Tensor, pos_scores: torch.Tensor, rows_per_tile: int
) -> Negatives:
    """Semi-hard negatives when each anchor has one row (a ascending, distinct): one
    masked pass per tile, tiles as slices (few small ops: at small batches their count
    is the cost)."""
    inf = float("inf")
    parts = []
    for lo, anc in zip(
        range(0, len(a), rows_per_tile), _row_tiles(p, a, rows_per_tile), strict=True
    ):
        # non-negatives at -inf: never the farthest, never above a positive score
        s = p.space.scores(anc).masked_fill_(_same_mask(p, anc), -inf)  # type: ignore[arg-type]
        far_score, far = s.max(1)  # the fallback: first index of the maximum
        q = pos_scores[lo : lo + rows_per_tile].to(s.dtype).unsqueeze(1)
        val, idx = torch.where(s > q, s, inf).min(1)
        semi = val < inf
        parts.append(Negatives(
            torch.where(semi, idx, far), far_score > -inf, torch.where(semi, val, far_score)
        ))
    return _cat_negatives(p, parts)


def _log_weights(
    p: Prepared, anchors: torch.Tensor, s: torch.Tensor, same: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Wu et al.'s log 1/q(d) on the unit sphere, -inf where not eligible, and whether
    each row has an eligible negative (closer than the non-zero-loss cut-off)."""
    dim = p.space.anchors.shape[1]
    # squared distances, worked on in place: the block passes dominate this strategy
    if p.space.kind == "cosine":
        sq = (s + 1.0).mul_(2.0)
    else:
        sq = s + p.space.anchor_sq[anchors].unsqueeze(1)
    eligible = sq.masked_fill_(same, float("inf")) < DW_NONZERO_LOSS_CUTOFF**2
    sq.clamp_min_(DW_CUTOFF**2)
    # log 1/q(d) = (2 - n) log d - (n - 3)/2 log(1 - d^2/4); eligible d < 1.4 keeps the
    # second log finite, the others are masked
    log_w = torch.log(sq).mul_((2.0 - dim) / 2.0)
    log_w.sub_(torch.log1p(sq.mul_(-0.25)).mul_((dim - 3) / 2.0))
    return log_w.masked_fill_(~eligible, float("-inf")), eligible.any(1)


def distance_weighted_negatives(
    p: Prepared, a: torch.Tensor, generator: torch.Generator | None = None,
    distinct: bool = False,
) -> Negatives:
    """A negative per row a[i], sampled with weight 1/q(d) (Wu et al. 2017).

    q is the density of distances between random points on the unit sphere in the
    embedding dimension, d clipped below at 0.5, among negatives closer than 1.4; if none
    is, uniformly among all negatives. The weights depend on the anchor only, so each
    anchor's row is normalised once and each row draws by inverse CDF with one uniform
    (drawn for all rows at once, so the tile size does not change the draw).
    `distinct`: see group_pairs.
    """
    r = _empty(p, len(a))
    if len(a) == 0:
        return r
    u = torch.rand(len(a), generator=generator, device=a.device, dtype=torch.float64)
    g = group_pairs(a, distinct)
    elem = p.space.refs.element_size()
    for rows in tiles(len(g.anchors), _rows(p, len(g.anchors), 2 * elem + 9), a.device):
        anc = g.anchors[rows]
        pairs, local, slot, kmax = _tile_pairs(g, rows)
        same = _same_mask(p, anc)
        s = p.space.scores(anc)
        log_w, has_eligible = _log_weights(p, anc, s, same)
        # relative to the row maximum, as in Wu et al.'s code: no overflow
        top = log_w.amax(1, keepdim=True).masked_fill_(~has_eligible.unsqueeze(1), 0.0)
        w = log_w.sub_(top).exp_()
        if not bool(has_eligible.all()):  # uniform among all negatives
            w[~has_eligible] = (~same[~has_eligible]).to(w.dtype)
        cdf = w.cumsum(1, dtype=torch.float64)  # float64: tiny weights keep their mass
        total = cdf[:, -1]  # > 0 exactly when the anchor has a negative
        tot = total if g.single else total[local]
        # first column whose cdf exceeds the target: never a zero-weight column
        target = torch.minimum(u[pairs] * tot, torch.nextafter(tot, torch.zeros_like(tot)))
        if g.single:
            col = torch.searchsorted(cdf, target.unsqueeze(1), right=True).squeeze(1)
        else:
            t_rows = _per_pair(target, local, slot, len(rows), kmax)
            col = torch.searchsorted(cdf, t_rows, right=True)[local, slot]
        col = col.clamp_(max=cdf.shape[1] - 1)  # only rows without negatives reach M
        r.index[pairs], r.ok[pairs], r.score[pairs] = col, tot > 0, s[local, col]
    return r

