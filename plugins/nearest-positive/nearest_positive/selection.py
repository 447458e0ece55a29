"""`select`: one positive per anchor, computed tile by tile without gradient."""

from __future__ import annotations

from typing import NamedTuple

import torch

from ._ids import SelfMatches
from ._validation import check_choice, check_inputs, check_tile_size
from .distances import DISTANCES, Space
from .tiling import tile_rows, tiles

POSITIVE_STRATEGIES: tuple[str, ...] = ("nearest", "hardest", "random")
ON_MISSING: tuple[str, ...] = ("drop", "error")


class Selection(NamedTuple):
    """Result of :func:`select`.

    anchors: int64 indices into ``embeddings`` of the anchors that got a positive.
    positives: int64 indices into the reference set (``ref_embeddings``, or
        ``embeddings`` when no reference is given), aligned with ``anchors``.
    distances: distance of each (anchor, positive) pair, in the chosen ``distance``,
        float32 (float64 for float64 input), no gradient.
    missing: number of anchors without any candidate (dropped).
    missing_anchors: int64 indices of those anchors.
    """

    anchors: torch.Tensor
    positives: torch.Tensor
    distances: torch.Tensor
    missing: int
    missing_anchors: torch.Tensor


class Prepared(NamedTuple):
    space: Space
    labels: torch.Tensor
    ref_labels: torch.Tensor
    self_matches: SelfMatches
    rows_per_tile: int
    ids: torch.Tensor | None  # None: the reference shares no identity with the batch
    ref_ids: torch.Tensor | None


def prepare(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    ref_embeddings: torch.Tensor | None,
    ref_labels: torch.Tensor | None,
    ids: torch.Tensor | None,
    ref_ids: torch.Tensor | None,
    distance: str,
    normalize: bool,
    tile_size: int | None,
) -> Prepared:
    """Validate inputs and build the shared workspace for selection and negatives."""
    emb, lab, ref, rlab, i, ri = check_inputs(
        embeddings, labels, ref_embeddings, ref_labels, ids, ref_ids
    )
    check_choice(distance, "distance", DISTANCES)
    tile_size = check_tile_size(tile_size)
    device = emb.device
    lab = lab.to(device)
    space = Space.build(emb, ref, distance, bool(normalize))
    if ref is None:
        rlab = lab
        own = torch.arange(emb.shape[0], device=device) if i is None else i.to(device).long()
        matches = SelfMatches.from_ids(own, own)
        a_ids, r_ids = own, own
    elif i is None:
        # A separate reference set with no ids shares no identity with the batch.
        matches = SelfMatches.none(emb.shape[0], device)
        a_ids = r_ids = None
    else:
        a_ids, r_ids = i.to(device).long(), ri.to(device).long()  # type: ignore[union-attr]
        matches = SelfMatches.from_ids(a_ids, r_ids)
    assert rlab is not None
    rlab = rlab.to(device)
    rows = tile_rows(
        emb.shape[0], space.refs.shape[0], tile_size, space.refs.element_size()
    )
    return Prepared(space, lab, rlab, matches, rows, a_ids, r_ids)


class Scratch:
    """Tile-sized buffers reused across tiles (scores and one bool mask)."""

    def __init__(self, p: Prepared) -> None:
        m = p.space.refs.shape[0]
        t = min(p.rows_per_tile, max(p.space.anchors.shape[0], 1))
        dev = p.space.anchors.device
        self.scores = torch.empty((t, m), dtype=p.space.anchors.dtype, device=dev)
        self.mask = torch.empty((t, m), dtype=torch.bool, device=dev)

    def views(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.scores[:n], self.mask[:n]


def positive_candidates(
    p: Prepared, rows: torch.Tensor, fill: float, scratch: Scratch | None = None
) -> torch.Tensor:
    """Scores of `rows` with every non-candidate (other label, same id) set to `fill`."""
    if scratch is None:
        s = p.space.scores(rows)
        mask = p.labels[rows].unsqueeze(1) != p.ref_labels.unsqueeze(0)
    else:
        sbuf, mask = scratch.views(len(rows))
        s = p.space.scores(rows, out=sbuf)
        torch.ne(p.labels[rows].unsqueeze(1), p.ref_labels.unsqueeze(0), out=mask)
    s.masked_fill_(mask, fill)
    local, cols = p.self_matches.pairs(rows)
    if len(local):
        s[local, cols] = fill
    return s


#: Candidates whose matmul score is within this relative distance of the best are
#: re-ranked on exactly computed distances (see refine_ties).
TIE_RTOL = {torch.float32: 1e-5, torch.float64: 1e-12}
#: Re-ranking is skipped for a tile with more near-ties than this per row on average
#: (degenerate batches of near-identical rows); the matmul order is kept there.
MAX_TIES_PER_ROW = 64


def refine_ties(
    p: Prepared,
    rows: torch.Tensor,
    s: torch.Tensor,
    val: torch.Tensor,
    idx: torch.Tensor,
    ok: torch.Tensor,
    largest: bool,
    scratch: Scratch | None = None,
) -> torch.Tensor:
    """Make ties exact: the matmul gives identical reference rows slightly different
    scores depending on their column position, so near-best candidates are compared again
    on distances computed row by row (bitwise-equal rows then tie exactly) and the
    smallest index wins among equals."""
    scale = p.space.anchor_sq[rows] + p.space.ref_sq.max() + 1.0
    tol = TIE_RTOL[s.dtype] * scale
    v = torch.where(ok, val, torch.zeros_like(val))
    gap = (v - tol).unsqueeze(1) if largest else (v + tol).unsqueeze(1)
    out = None if scratch is None else scratch.views(len(rows))[1]
    near = torch.ge(s, gap, out=out) if largest else torch.le(s, gap, out=out)
    near &= ok.unsqueeze(1)
    count = int(near.sum())
    if count <= int(ok.sum()) or count > MAX_TIES_PER_ROW * len(rows):
        return idx  # no near-ties at all (one candidate per row), or degenerate tile
    r, c = torch.nonzero(near, as_tuple=True)
    exact = p.space.pair_distance(rows[r], c)
    if largest:
        exact = -exact
    n = len(rows)
    best = exact.new_full((n,), float("inf")).scatter_reduce(0, r, exact, "amin")
    big = torch.iinfo(torch.long).max
    key = torch.where(exact == best[r], c, torch.full_like(c, big))
    first = torch.full((n,), big, dtype=torch.long, device=idx.device).scatter_reduce(
        0, r, key, "amin"
    )
    return torch.where(ok, first, idx)


#: The grouped path is used when the largest class in the reference holds at most this
#: fraction of its rows (then comparing within classes is far cheaper than B x M).
GROUPED_MAX_FRACTION = 1 / 16
#: Scratch budget of the grouped path (bytes of gathered candidate rows per tile).
GROUPED_BUDGET_BYTES = 16 * 2**20


def choose_positives_grouped(
    p: Prepared, strategy: str, generator: torch.Generator | None, kmax: int,
    order: torch.Tensor, lo: torch.Tensor, cnt: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Positives compared within each label only: anchors gather their class's reference
    rows (sorted by label, then index) and measure exact distances to them."""
    sp = p.space
    n, d = sp.anchors.shape
    device = sp.anchors.device
    best = torch.zeros(n, dtype=torch.long, device=device)
    best_score = torch.zeros(n, dtype=sp.anchors.dtype, device=device)
    found = torch.zeros(n, dtype=torch.bool, device=device)
    rows_per = max(1, GROUPED_BUDGET_BYTES // (kmax * (d + 4) * sp.anchors.element_size()))
    k = torch.arange(kmax, device=device)
    m = sp.refs.shape[0]
    for rows in tiles(n, rows_per, device):
        valid = k.unsqueeze(0) < cnt[rows].unsqueeze(1)
        cand = order[(lo[rows].unsqueeze(1) + k).clamp(max=m - 1)]
        if p.ids is not None and p.ref_ids is not None:
            valid &= p.ref_ids[cand] != p.ids[rows].unsqueeze(1)
        a = sp.anchors[rows].unsqueeze(1)
        r = sp.refs[cand]
        if sp.kind == "cosine":
            score = -(a * r).sum(-1)
        else:  # exact squared distance, in score units (d^2 - |a|^2)
            score = (a - r).pow(2).sum(-1) - sp.anchor_sq[rows].unsqueeze(1)
        if strategy == "nearest":
            val, j = score.masked_fill(~valid, float("inf")).min(1)
        elif strategy == "hardest":
            val, j = score.masked_fill(~valid, float("-inf")).max(1)
        else:
            keys = torch.rand(score.shape, generator=generator, device=device, dtype=score.dtype)
            _, j = keys.masked_fill(~valid, -1.0).max(1)
            val = score.gather(1, j.unsqueeze(1)).squeeze(1)
        best[rows] = cand.gather(1, j.unsqueeze(1)).squeeze(1)
        best_score[rows] = val
        found[rows] = valid.any(1)
    return best, best_score, found


def choose_positives(
    p: Prepared,
    strategy: str,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(positive index per anchor, its score, has-candidate mask) for every anchor.

    Two exact paths: grouped by label when classes are small relative to the reference
    (the usual P x K batch), else dense row tiles with a masked arg-min over all rows.
    """
    n = p.space.anchors.shape[0]
    m = p.space.refs.shape[0]
    if n and m:
        sorted_labels, order = torch.sort(p.ref_labels, stable=True)
        lo = torch.searchsorted(sorted_labels, p.labels, side="left")
        cnt = torch.searchsorted(sorted_labels, p.labels, side="right") - lo
        kmax = int(cnt.max())
        if kmax == 0:
            z = torch.zeros(n, dtype=torch.long, device=p.space.anchors.device)
            return z, z.to(p.space.anchors.dtype), z.bool()
        if kmax <= GROUPED_MAX_FRACTION * m:
            return choose_positives_grouped(p, strategy, generator, kmax, order, lo, cnt)
    device = p.space.anchors.device
    best = torch.zeros(n, dtype=torch.long, device=device)
    best_score = torch.zeros(n, dtype=p.space.anchors.dtype, device=device)
    found = torch.zeros(n, dtype=torch.bool, device=device)
    if p.space.refs.shape[0] == 0:
        return best, best_score, found
    scratch = Scratch(p) if strategy != "random" else None
    for rows in tiles(n, p.rows_per_tile, device):
        if strategy == "nearest":
            s = positive_candidates(p, rows, float("inf"), scratch)
            val, idx = s.min(1)  # first index on ties, like torch.argmin
            ok = torch.isfinite(val)
            idx = refine_ties(p, rows, s, val, idx, ok, largest=False, scratch=scratch)
        elif strategy == "hardest":
            s = positive_candidates(p, rows, float("-inf"), scratch)
            val, idx = s.max(1)
            ok = torch.isfinite(val)
            idx = refine_ties(p, rows, s, val, idx, ok, largest=True, scratch=scratch)
        else:  # random: uniform among candidates, via random keys on a masked tile
            s = positive_candidates(p, rows, float("nan"))
            keys = torch.rand(s.shape, generator=generator, device=device, dtype=s.dtype)
            keys.masked_fill_(torch.isnan(s), -1.0)
            kval, idx = keys.max(1)
            val = s.gather(1, idx.unsqueeze(1)).squeeze(1)
            ok = kval >= 0
        best[rows] = idx
        best_score[rows] = val
        found[rows] = ok
    return best, best_score, found


def make_generator(seed: int | None, device: torch.device) -> torch.Generator | None:
    if seed is None:
        return None
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def select(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    ref_embeddings: torch.Tensor | None = None,
    ref_labels: torch.Tensor | None = None,
    *,
    ids: torch.Tensor | None = None,
    ref_ids: torch.Tensor | None = None,
    distance: str = "euclidean",
    normalize: bool = True,
    strategy: str = "nearest",
    tile_size: int | None = None,
    on_missing: str = "drop",
    seed: int | None = None,
) -> Selection:
    """Choose one positive per anchor: by default its nearest same-label sample.

    Args:
        embeddings: (B, d) anchors, any float dtype; float16/bfloat16 are computed in
            float32. Must be finite.
        labels: (B,) integer class labels.
        ref_embeddings: (M, d) reference set to choose positives from (default: the batch).
        ref_labels: (M,) labels of the reference set; required with ``ref_embeddings``.
        ids: (B,) integer identities of the anchors (default: positions 0..B-1). A reference
            row with the anchor's id is never its positive; this is applied before choosing,
            so reference sets holding copies of the batch (memory banks, gathered batches)
            work. Without a reference set, the batch's own ids are used on both sides.
        ref_ids: (M,) identities of the reference rows; with a reference set, pass both
            ``ids`` and ``ref_ids`` or neither (neither: no reference row is an anchor).
        distance: ``"euclidean"`` (default), ``"squared_euclidean"`` or ``"cosine"``
            (1 - cosine similarity). On normalised embeddings all three rank alike.
        normalize: L2-normalise rows first (default True; cosine always normalises).
        strategy: ``"nearest"`` (default, the method), ``"hardest"`` (farthest candidate)
            or ``"random"`` (uniform among candidates; seeded by ``seed``).
        tile_size: anchor rows per tile (default None: sized so that one tile of scores
            stays within about 24 MiB). Extra memory is O(tile_size x M).
        on_missing: ``"drop"`` (default): anchors without a candidate are left out and
            counted in ``missing``; ``"error"``: raise ValueError instead.
        seed: seed of the random generator for ``strategy="random"`` (default None:
            torch's global generator).

    Ties go to the smallest reference index (torch.argmin's rule). Runs without gradient.
    """
    check_choice(strategy, "strategy", POSITIVE_STRATEGIES)
    check_choice(on_missing, "on_missing", ON_MISSING)
    with torch.no_grad():
        p = prepare(
            embeddings, labels, ref_embeddings, ref_labels, ids, ref_ids,
            distance, normalize, tile_size,
        )
        gen = make_generator(seed, p.space.anchors.device) if strategy == "random" else None
        best, _, found = choose_positives(p, strategy, gen)
        anchors = torch.nonzero(found).squeeze(1)
        missing_anchors = torch.nonzero(~found).squeeze(1)
        if on_missing == "error" and len(missing_anchors):
            shown = missing_anchors[:10].tolist()
            raise ValueError(
                f"{len(missing_anchors)} anchor(s) have no positive candidate "
                f"(no other sample with the same label), e.g. rows {shown}"
            )
        positives = best[anchors]
        dists = p.space.pair_distance(anchors, positives)
    return Selection(anchors, positives, dists, len(missing_anchors), missing_anchors)
