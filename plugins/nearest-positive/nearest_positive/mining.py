"""The tuple miner shared by every sampler: positives by strategy, then negatives."""

from __future__ import annotations

import warnings

import torch

from ._validation import check_choice
from .config import SamplerConfig
from .negatives import (
    Negatives,
    all_negative_triplets,
    all_negatives,
    distance_weighted_negatives,
    group_pairs,
    hardest_negatives,
    negative_distance_sums,
    semihard_negatives,
)
from .selection import Prepared, choose_positives, make_generator, prepare
from .tiling import tiles

POSITIVES: tuple[str, ...] = ("nearest", "all", "random", "hardest")

IndicesTuple = tuple[torch.Tensor, ...]

_EMPTY_DIAGNOSTICS: dict[str, float | int] = {
    "anchors": 0,
    "anchors_without_positive": 0,
    "tuples": 0,
    "mean_ap_distance": float("nan"),
    "mean_an_distance": float("nan"),
}


def empty_diagnostics() -> dict[str, float | int]:
    return dict(_EMPTY_DIAGNOSTICS)


def _all_positive_pairs(p: Prepared) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every (anchor, positive) pair with its score, by tiles."""
    n = p.space.anchors.shape[0]
    device = p.space.anchors.device
    aa, pp, ss = [], [], []
    for rows in tiles(n, p.rows_per_tile, device):
        s = p.space.scores(rows)
        cand = p.labels[rows].unsqueeze(1) == p.ref_labels.unsqueeze(0)
        local, cols = p.self_matches.pairs(rows)
        if len(local):
            cand[local, cols] = False
        r, c = torch.nonzero(cand, as_tuple=True)
        aa.append(rows[r])
        pp.append(c)
        ss.append(s[r, c])
    if not aa:
        e = torch.zeros(0, dtype=torch.long, device=device)
        return e, e, torch.zeros(0, dtype=p.space.anchors.dtype, device=device)
    return torch.cat(aa), torch.cat(pp), torch.cat(ss)


def _mean(x: torch.Tensor) -> float:
    return float(x.mean()) if x.numel() else float("nan")


class Miner:
    """Callable tuple miner: ``miner(embeddings, labels, ref_emb=None, ref_labels=None)``.

    ``config`` gives the options (the wrapper-only ones are ignored; ``output="auto"`` is
    triplets), ``positives`` the positive strategy (one of :data:`POSITIVES`).
    Returns PML's ``indices_tuple``: ``(a, p, n)`` or ``(a1, p, a2, n)`` int64 tensors;
    anchors index ``embeddings``, the others the reference set. ``last_diagnostics``
    holds the counts and mean distances of the last call. Keyword-only ``ids`` and
    ``ref_ids`` give identities (see :func:`nearest_positive.select`).
    """

    def __init__(self, config: SamplerConfig | None = None, positives: str = "nearest") -> None:
        self.config = SamplerConfig() if config is None else config
        self.config.check()
        self.positives = check_choice(positives, "positives", POSITIVES)
        self.output = "triplets" if self.config.output == "auto" else self.config.output
        self.last_diagnostics: dict[str, float | int] = empty_diagnostics()
        self._generator: torch.Generator | None = None

    def _gen(self, device: torch.device) -> torch.Generator | None:
        if self.config.seed is None:
            return None
        if self._generator is None or self._generator.device != device:
            self._generator = make_generator(self.config.seed, device)
        return self._generator

    def __call__(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_emb: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
        *,
        ids: torch.Tensor | None = None,
        ref_ids: torch.Tensor | None = None,
    ) -> IndicesTuple:
        if self.config.negatives == "all":  # outputs of B x M size: no copy
            with torch.no_grad():
                return self._mine(embeddings, labels, ref_emb, ref_labels, ids, ref_ids)
        # inference mode trims every op's bookkeeping (about 7% of a small batch's
        # mining); its tensors cannot index a graph, so the O(B) outputs are copied out
        with torch.inference_mode():
            out = self._mine(embeddings, labels, ref_emb, ref_labels, ids, ref_ids)
        return tuple(t.clone() for t in out)

    def _mine(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_emb: torch.Tensor | None,
        ref_labels: torch.Tensor | None,
        ids: torch.Tensor | None,
        ref_ids: torch.Tensor | None,
    ) -> IndicesTuple:
        o, c = self, self.config
        p = prepare(
            embeddings, labels, ref_emb, ref_labels, ids, ref_ids,
            c.distance, c.normalize, c.tile_size,
        )
        device = p.space.anchors.device
        gen = self._gen(device)
        n_anchors = p.space.anchors.shape[0]
        if o.positives == "all":
            a, pos, pos_s = _all_positive_pairs(p)
            has = torch.zeros(n_anchors, dtype=torch.bool, device=device)
            has[a] = True
        else:
            best, best_s, has = choose_positives(p, o.positives, gen)
            a = torch.nonzero(has).squeeze(1)
            pos, pos_s = best[a], best_s[a]
        missing = n_anchors - len(a) if o.positives != "all" else int((~has).sum())
        if missing and c.on_missing == "error":
            rows = torch.nonzero(~has).squeeze(1)[:10].tolist()
            raise ValueError(
                f"{missing} anchor(s) have no positive candidate "
                f"(no other sample with the same label), e.g. rows {rows}"
            )
        anchors_with_pos = torch.unique(a) if o.positives == "all" else a
        ap_dist = p.space.to_distance(pos_s, a)
        result, an_mean = _complete(p, o, a, pos, pos_s, gen)

        tuples = len(result[0]) if o.output == "triplets" else len(result[0]) + len(result[2])
        self.last_diagnostics = {
            "anchors": int(len(anchors_with_pos)),
            "anchors_without_positive": missing,
            "tuples": int(tuples),
            "mean_ap_distance": _mean(ap_dist),
            "mean_an_distance": an_mean,
        }
        return tuple(t.long() for t in result)


def _complete(
    p: Prepared,
    o: Miner,
    a: torch.Tensor,
    pos: torch.Tensor,
    pos_s: torch.Tensor,
    gen: torch.Generator | None,
) -> tuple[IndicesTuple, float]:
    """Negatives for the (a, pos) rows: the indices tuple and the mean anchor-negative
    distance over its (anchor, negative) entries.

    Pairs with negatives="all" carry every negative pair of every anchor, with or without
    a positive: the wrapped loss's own negative pairs (PML's get_all_pairs_indices); the
    sampler changes positives only. The other strategies pick a negative for an
    (anchor, positive) tuple, as PML's own miners for them do, so an anchor without a
    positive gets none.
    """
    if o.config.negatives == "all":
        return _every_negative(p, o, a, pos)
    return _one_negative(p, o, a, pos, pos_s, gen)


def _every_negative(
    p: Prepared, o: Miner, a: torch.Tensor, pos: torch.Tensor
) -> tuple[IndicesTuple, float]:
    """negatives="all": no per-pair work, label masks and one score block per tile."""
    if o.output == "pairs":
        everyone = torch.arange(p.space.anchors.shape[0], device=a.device)
        na, nn = all_negatives(p)
        sums, counts = negative_distance_sums(p, everyone)
        return (a, pos, na, nn), _ratio(sums.sum(), counts.sum())
    result = all_negative_triplets(p, a, pos)
    # triplets repeat an anchor's negatives once per positive: weight by that count
    g = group_pairs(a, o.positives != "all")
    sums, counts = negative_distance_sums(p, g.anchors)
    per = torch.bincount(g.group, minlength=len(g.anchors)).to(sums.dtype)
    return result, _ratio((sums * per).sum(), (counts * per).sum())


def _one_negative(
    p: Prepared,
    o: Miner,
    a: torch.Tensor,
    pos: torch.Tensor,
    pos_s: torch.Tensor,
    gen: torch.Generator | None,
) -> tuple[IndicesTuple, float]:
    """One negative per (anchor, positive) row (hardest: per anchor in pair output)."""
    distinct = o.positives != "all"  # one row per anchor, ascending
    if o.config.negatives == "hardest":
        # independent of the positive: one search per distinct anchor
        if distinct:
            r = hardest_negatives(p, a)
        else:
            g = group_pairs(a)
            hard = hardest_negatives(p, g.anchors)
            if o.output == "pairs":  # one negative pair per anchor
                ok = hard.ok
                result: IndicesTuple = (a, pos, g.anchors[ok], hard.index[ok])
                return result, _mean(p.space.to_distance(hard.score[ok], g.anchors[ok]))
            r = Negatives(hard.index[g.group], hard.ok[g.group], hard.score[g.group])
    elif o.config.negatives == "semihard":
        r = semihard_negatives(p, a, pos_s, distinct)
    else:
        r = distance_weighted_negatives(p, a, gen, distinct)
    if bool(r.ok.all()):  # the usual case: no row to drop
        an_a, an_n, an_s, an_p = a, r.index, r.score, pos
    else:
        an_a, an_n, an_s, an_p = a[r.ok], r.index[r.ok], r.score[r.ok], pos[r.ok]
    result = (a, pos, an_a, an_n) if o.output == "pairs" else (an_a, an_p, an_n)
    return result, _mean(p.space.to_distance(an_s, an_a))


def _ratio(num: torch.Tensor, den: torch.Tensor) -> float:
    return float(num) / float(den) if float(den) else float("nan")


def warn_small_k(labels: torch.Tensor) -> None:
    """Nearest-positive changes nothing when each class has 2 samples: say so once."""
    _, counts = torch.unique(labels, return_counts=True)
    multi = counts[counts >= 2]
    if len(multi) and int(multi.max()) == 2:
        warnings.warn(
            "every class in this batch has at most 2 samples: the nearest positive is the "
            "only positive, so nearest-positive sampling equals all-positives; use "
            ">= 3 samples per class (4 is usual)",
            stacklevel=3,
        )
