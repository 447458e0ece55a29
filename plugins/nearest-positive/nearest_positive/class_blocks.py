"""Positives of large classes: one score matmul per (class, anchor tile), no label mask.

Reference rows are grouped by label (stable sort, so within a class they keep index
order). An anchor's candidates are then one contiguous block: its class's rows. Each tile
of a class's anchors gets one matmul against that block into a reused buffer, the
anchor's own copies are set to +-inf, and one read-only pass of per-chunk minima (or
maxima) gives the best and second-best of each row (`best_two`). The matmul can give
bitwise-identical rows slightly different scores depending on their column, and loses
small differences to cancellation far from the origin, so rows whose second-best score
is within a tolerance of the best are re-ranked on exactly computed distances
(bitwise-equal rows then tie exactly; the smallest index wins).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import torch

from .tiling import tile_rows, tiles

if TYPE_CHECKING:
    from .selection import Prepared

#: Candidates whose matmul score is within this relative distance of the best are
#: re-ranked on exactly computed distances.
TIE_RTOL = {torch.float32: 1e-5, torch.float64: 1e-12}
#: Re-ranking is skipped for a chunk of tied rows with more near-ties than this per row
#: on average (degenerate sets of near-identical rows); the matmul order is kept there.
MAX_TIES_PER_ROW = 64
#: Tied rows are re-ranked this many at a time (bounds the copy of their scores).
TIED_ROWS_PER_CHUNK = 64


class ClassIndex:
    """Reference rows sorted by label: class c of anchor i is ``order[lo[i]:lo[i]+cnt[i]]``."""

    def __init__(self, p: Prepared) -> None:
        sorted_labels, self.order = torch.sort(p.ref_labels, stable=True)
        self.lo = torch.searchsorted(sorted_labels, p.labels, side="left")
        self.cnt = torch.searchsorted(sorted_labels, p.labels, side="right") - self.lo
        self._ref_sq = p.space.ref_sq

    # Only the per-class matmul path reads these: built on first use (small batches
    # never take that path, and there a few tensor ops are a visible share of a step).
    @functools.cached_property
    def position(self) -> torch.Tensor:
        """Sorted position of each reference row."""
        position = torch.empty_like(self.order)
        position[self.order] = torch.arange(self.order.shape[0], device=self.order.device)
        return position

    @functools.cached_property
    def ref_sq_max(self) -> torch.Tensor:
        """Scale of the tie tolerance: |a|^2 + max |r|^2 + 1 bounds the scores' size."""
        sq = self._ref_sq
        return sq.max() if sq.shape[0] else sq.new_zeros(())


def pair_scores(p: Prepared, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Exact scores (the matmul's units: d^2 - |a|^2, or -a.r) of explicit pairs."""
    sp = p.space
    a, r = sp.anchors[rows], sp.refs[cols]
    if sp.kind == "cosine":
        return -(a * r).sum(-1)
    return (a - r).pow(2).sum(-1) - sp.anchor_sq[rows]


def _exact_first(
    p: Prepared, rows: torch.Tensor, r: torch.Tensor, cols: torch.Tensor, largest: bool
) -> torch.Tensor:
    """Per local row: the smallest column among its (r, cols) entries at the best exact
    distance (largest distance if `largest`)."""
    exact = p.space.pair_distance(rows[r], cols)
    if largest:
        exact = -exact
    n = len(rows)
    best = exact.new_full((n,), float("inf")).scatter_reduce(0, r, exact, "amin")
    big = torch.iinfo(torch.long).max
    key = torch.where(exact == best[r], cols, torch.full_like(cols, big))
    return torch.full((n,), big, dtype=torch.long, device=cols.device).scatter_reduce(
        0, r, key, "amin"
    )


#: Columns per chunk in best_two: chunk minima of this width are one fast vectorised
#: pass (torch's min-with-index along a row is several times slower than the matmul).
CHUNK = 256


def best_two(s: torch.Tensor, largest: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(best value, its first column, second-best value) per row of the tile `s`.

    One read-only pass takes per-chunk minima (maxima if `largest`); the best chunk is then
    searched for the first best column, and the second-best is the better of that chunk's
    runner-up and the other chunks' best. Only the chunk pass touches the whole tile.
    """
    fill = float("-inf") if largest else float("inf")
    n, m = s.shape
    full = m // CHUNK
    if full == 0:  # narrow tile: search it directly
        chunk_best = s.new_empty(n, 0)
    else:
        chunked = s[:, : full * CHUNK].unflatten(1, (full, CHUNK))
        chunk_best = chunked.amax(2) if largest else chunked.amin(2)
    if full * CHUNK < m:
        tail = s[:, full * CHUNK:]
        tail_best = tail.amax(1, keepdim=True) if largest else tail.amin(1, keepdim=True)
        chunk_best = torch.cat([chunk_best, tail_best], 1)
    _, c = chunk_best.max(1) if largest else chunk_best.min(1)  # first best chunk
    cols = c.unsqueeze(1) * CHUNK + torch.arange(CHUNK, device=s.device)
    inside = cols < m
    vals = s.gather(1, cols.clamp_(max=m - 1)).masked_fill_(~inside, fill)
    val, j = vals.max(1) if largest else vals.min(1)  # first best column in the chunk
    vals.scatter_(1, j.unsqueeze(1), fill)
    chunk_best.scatter_(1, c.unsqueeze(1), fill)
    if largest:
        second = torch.maximum(vals.amax(1), chunk_best.amax(1))
    else:
        second = torch.minimum(vals.amin(1), chunk_best.amin(1))
    return val, c * CHUNK + j, second


def _rerank(
    p: Prepared, ci: ClassIndex, rows: torch.Tensor, s: torch.Tensor, val: torch.Tensor,
    idx: torch.Tensor, second: torch.Tensor, ok: torch.Tensor, block: torch.Tensor,
    largest: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Re-rank the rows of tile `s` whose best and second-best are within tolerance.

    `idx` are block-local columns of the best entries; `block` maps block-local columns
    to reference rows.
    """
    fill = float("-inf") if largest else float("inf")
    scale = p.space.anchor_sq[rows] + ci.ref_sq_max + 1.0
    tol = TIE_RTOL[s.dtype] * scale
    gap = val - tol if largest else val + tol
    tied = ok & (second >= gap if largest else second <= gap)
    cols = block[idx]
    if not bool(tied.any()):
        return cols, val
    score = val.clone()
    for part in torch.nonzero(tied).squeeze(1).split(TIED_ROWS_PER_CHUNK):
        sub = s.index_select(0, part)
        near = sub >= gap[part].unsqueeze(1) if largest else sub <= gap[part].unsqueeze(1)
        near &= sub != fill
        if int(near.sum()) > MAX_TIES_PER_ROW * len(part):
            continue  # degenerate: keep the matmul's choice
        r, c = torch.nonzero(near, as_tuple=True)
        first = _exact_first(p, rows[part], r, block[c], largest)
        cols[part] = first
        local = torch.searchsorted(block, first)  # block is sorted: reference order
        score[part] = sub.gather(1, local.unsqueeze(1)).squeeze(1)
    return cols, score


def choose_in_blocks(
    p: Prepared, ci: ClassIndex, anchors: torch.Tensor, strategy: str,
    generator: torch.Generator | None,
    best: torch.Tensor, best_score: torch.Tensor, found: torch.Tensor,
) -> None:
    """Fill best/best_score/found for `anchors`, class by class."""
    sp = p.space
    if len(anchors) == 0:
        return
    anchors = anchors[torch.argsort(ci.lo[anchors], stable=True)]
    starts, counts = torch.unique_consecutive(ci.lo[anchors], return_counts=True)
    sizes = ci.cnt[anchors[torch.cumsum(counts, 0) - counts]]
    plan = []
    offset = 0
    for lo, n_c, m_c in zip(starts.tolist(), counts.tolist(), sizes.tolist(), strict=True):
        rows_c = tile_rows(n_c, m_c, p.tile_size, sp.refs.element_size(), mask=False)
        plan.append((lo, m_c, anchors[offset:offset + n_c], rows_c))
        offset += n_c
    flat = sp.refs.new_empty(max(min(t, len(a)) * m for _, m, a, t in plan))
    largest = strategy == "hardest"
    fill = float("-inf") if largest else float("inf")
    for lo, m_c, class_anchors, rows_c in plan:
        block = ci.order[lo:lo + m_c]
        refs = sp.refs.index_select(0, block)
        if sp.kind == "cosine":
            refs.neg_()  # score -a.r straight from the matmul
        else:  # [-2 r, |r|^2] against [a, 1]: the score |r|^2 - 2 a.r from one matmul,
            # without addmm's pass copying |r|^2 into every row of the output first
            refs = torch.cat([refs.mul_(-2.0), sp.ref_sq.index_select(0, block)[:, None]], 1)
        for part in tiles(len(class_anchors), rows_c, class_anchors.device):
            rows = class_anchors[part]
            n = len(rows)
            s = flat[: n * m_c].view(n, m_c)
            local, cols = p.self_matches.pairs(rows)
            if len(local):  # the anchor's own copies, moved to block-local columns
                cols = ci.position[cols] - lo
                keep = (cols >= 0) & (cols < m_c)
                local, cols = local[keep], cols[keep]
            if strategy == "random":  # uniform among candidates via random keys
                torch.rand((n, m_c), generator=generator, out=s)
                s[local, cols] = -1.0
                kval, idx = s.max(1)
                ok = kval >= 0
                chosen = block[idx]
                score = pair_scores(p, rows, chosen)
            else:
                a = sp.anchors.index_select(0, rows)
                if sp.kind != "cosine":
                    a = torch.cat([a, a.new_ones(n, 1)], 1)
                torch.mm(a, refs.t(), out=s)
                s[local, cols] = fill
                val, idx, second = best_two(s, largest)
                ok = torch.isfinite(val)
                chosen, score = _rerank(p, ci, rows, s, val, idx, second, ok, block, largest)
            best[rows] = chosen
            best_score[rows] = score
            found[rows] = ok
