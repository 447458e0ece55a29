"""`select`: one positive per anchor, computed tile by tile without gradient."""

from __future__ import annotations

from typing import NamedTuple

import torch

from ._ids import SelfMatches
from ._validation import check_choice, check_inputs, check_tile_size
from .class_blocks import ClassIndex, choose_in_blocks
from .distances import DISTANCES, Space
from .tiling import tile_rows

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
    tile_size: int | None  # as requested (None: sized from the memory budget)
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
        if i is None:  # positions: each row is its own only copy (no sort needed)
            own = torch.arange(emb.shape[0], device=device)
            matches = SelfMatches(own, torch.ones_like(own), own)
        else:
            own = i.to(device).long()
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
    return Prepared(space, lab, rlab, matches, rows, tile_size, a_ids, r_ids)


#: Classes with at most this many reference rows are compared by gathering their rows
#: per anchor (exact distances, no matmul); larger classes get one score matmul per
#: (class, anchor tile) in class_blocks. Gathering wins for small classes: no per-class
#: Python loop, and B x K x d work is tiny when K is small.
GROUPED_MAX_ROWS = 32
#: Scratch budget of the grouped path (bytes of gathered candidate rows per tile).
GROUPED_BUDGET_BYTES = 16 * 2**20


def choose_positives_grouped(
    p: Prepared, ci: ClassIndex, anchors: torch.Tensor | None, strategy: str,
    generator: torch.Generator | None,
    best: torch.Tensor, best_score: torch.Tensor, found: torch.Tensor,
) -> None:
    """Positives of `anchors` (None: every anchor) compared within each label only: each
    anchor gathers its class's reference rows (sorted by label, then index) and measures
    exact distances."""
    sp = p.space
    n = sp.anchors.shape[0] if anchors is None else len(anchors)
    if n == 0:
        return
    kmax = max(int((ci.cnt if anchors is None else ci.cnt[anchors]).max()), 1)
    d = sp.anchors.shape[1]
    device = sp.anchors.device
    rows_per = max(1, GROUPED_BUDGET_BYTES // (kmax * (d + 4) * sp.anchors.element_size()))
    k = torch.arange(kmax, device=device)
    m = sp.refs.shape[0]
    for lo in range(0, n, rows_per):
        # every anchor: tiles are slices (views, no index copies: small batches feel them)
        rows: slice | torch.Tensor = (
            slice(lo, lo + rows_per) if anchors is None else anchors[lo : lo + rows_per]
        )
        valid = k.unsqueeze(0) < ci.cnt[rows].unsqueeze(1)
        cand = ci.order[(ci.lo[rows].unsqueeze(1) + k).clamp_(max=m - 1)]
        if p.ids is not None and p.ref_ids is not None:
            valid &= p.ref_ids[cand] != p.ids[rows].unsqueeze(1)
        a = sp.anchors[rows].unsqueeze(1)
        r = sp.refs[cand]  # a fresh copy: worked on in place, no second tile-sized temporary
        if sp.kind == "cosine":
            score = r.mul_(a).sum(-1).neg_()
        else:  # exact squared distance, in score units (d^2 - |a|^2)
            score = r.sub_(a).square_().sum(-1).sub_(sp.anchor_sq[rows].unsqueeze(1))
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


def choose_positives(
    p: Prepared,
    strategy: str,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(positive index per anchor, its score, has-candidate mask) for every anchor.

    Both paths are exact and compare an anchor only with its own class's reference rows:
    small classes by gathering those rows, large ones by one matmul per anchor tile.
    """
    n = p.space.anchors.shape[0]
    device = p.space.anchors.device
    best = torch.zeros(n, dtype=torch.long, device=device)
    best_score = torch.zeros(n, dtype=p.space.anchors.dtype, device=device)
    found = torch.zeros(n, dtype=torch.bool, device=device)
    if n == 0 or p.space.refs.shape[0] == 0:
        return best, best_score, found
    ci = ClassIndex(p)
    if int(ci.cnt.max()) <= GROUPED_MAX_ROWS:  # the usual P x K batch: one path, no split
        choose_positives_grouped(p, ci, None, strategy, generator, best, best_score, found)
        return best, best_score, found
    small = ci.cnt <= GROUPED_MAX_ROWS
    has_class = ci.cnt > 0
    grouped = torch.nonzero(small & has_class).squeeze(1)
    blocks = torch.nonzero(~small).squeeze(1)
    choose_positives_grouped(p, ci, grouped, strategy, generator, best, best_score, found)
    choose_in_blocks(p, ci, blocks, strategy, generator, best, best_score, found)
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
