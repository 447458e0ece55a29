"""The tuple miner shared by every sampler: positives by strategy, then negatives."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch

from ._validation import check_choice
from .config import SamplerConfig
from .negatives import NEGATIVE_STRATEGIES, all_negatives, choose_negatives
from .selection import ON_MISSING, Prepared, choose_positives, make_generator, prepare
from .tiling import tiles

POSITIVES: tuple[str, ...] = ("nearest", "all", "random", "hardest")
OUTPUTS: tuple[str, ...] = ("triplets", "pairs")

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


@dataclass(frozen=True)
class MiningOptions:
    positives: str = "nearest"
    negatives: str = "all"
    output: str = "triplets"
    distance: str = "euclidean"
    normalize: bool = True
    tile_size: int | None = None
    on_missing: str = "drop"
    seed: int | None = None

    def __post_init__(self) -> None:
        check_choice(self.positives, "positives", POSITIVES)
        check_choice(self.negatives, "negatives", NEGATIVE_STRATEGIES)
        check_choice(self.output, "output", OUTPUTS)
        check_choice(self.on_missing, "on_missing", ON_MISSING)
        if self.negatives == "distance-weighted" and not self.normalize:
            raise ValueError(
                "negatives='distance-weighted' needs embeddings on the unit sphere "
                "(normalize=True): its weights use the sphere's distance density"
            )

    @classmethod
    def from_config(cls, config: SamplerConfig, positives: str) -> MiningOptions:
        return cls(
            positives=positives,
            negatives=config.negatives,
            output=config.output,
            distance=config.distance,
            normalize=config.normalize,
            tile_size=config.tile_size,
            on_missing=config.on_missing,
            seed=config.seed,
        )


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

    Returns PML's ``indices_tuple``: ``(a, p, n)`` or ``(a1, p, a2, n)`` int64 tensors;
    anchors index ``embeddings``, the others the reference set. ``last_diagnostics``
    holds the counts and mean distances of the last call. Keyword-only ``ids`` and
    ``ref_ids`` give identities (see :func:`nearest_positive.select`).
    """

    def __init__(self, options: MiningOptions) -> None:
        self.options = options
        self.last_diagnostics: dict[str, float | int] = empty_diagnostics()
        self._generator: torch.Generator | None = None

    def _gen(self, device: torch.device) -> torch.Generator | None:
        if self.options.seed is None:
            return None
        if self._generator is None or self._generator.device != device:
            self._generator = make_generator(self.options.seed, device)
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
        with torch.no_grad():
            return self._mine(embeddings, labels, ref_emb, ref_labels, ids, ref_ids)

    def _mine(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_emb: torch.Tensor | None,
        ref_labels: torch.Tensor | None,
        ids: torch.Tensor | None,
        ref_ids: torch.Tensor | None,
    ) -> IndicesTuple:
        o = self.options
        p = prepare(
            embeddings, labels, ref_emb, ref_labels, ids, ref_ids,
            o.distance, o.normalize, o.tile_size,
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
        missing = int((~has).sum())
        if missing and o.on_missing == "error":
            rows = torch.nonzero(~has).squeeze(1)[:10].tolist()
            raise ValueError(
                f"{missing} anchor(s) have no positive candidate "
                f"(no other sample with the same label), e.g. rows {rows}"
            )
        anchors_with_pos = torch.unique(a) if o.positives == "all" else a
        ap_dist = p.space.to_distance(pos_s, a)

        if o.negatives in ("all", "hardest"):
            # these do not depend on the positive: one pass per distinct anchor
            if o.negatives == "all":
                na, nn = all_negatives(p, anchors_with_pos)
            else:
                neg, ok = choose_negatives(p, anchors_with_pos, None, "hardest", gen)
                na, nn = anchors_with_pos[ok], neg[ok]
            if o.output == "pairs":
                result: IndicesTuple = (a, pos, na, nn)
                an_a, an_n = na, nn
            else:
                ta, tp, tn = _join(a, pos, na, nn, n_anchors)
                result = (ta, tp, tn)
                an_a, an_n = ta, tn
        else:
            neg, ok = choose_negatives(p, a, pos_s, o.negatives, gen)
            if o.output == "pairs":
                result = (a, pos, a[ok], neg[ok])
            else:
                result = (a[ok], pos[ok], neg[ok])
            an_a, an_n = a[ok], neg[ok]

        tuples = len(result[0]) if o.output == "triplets" else len(result[0]) + len(result[2])
        self.last_diagnostics = {
            "anchors": int(len(anchors_with_pos)),
            "anchors_without_positive": missing,
            "tuples": int(tuples),
            "mean_ap_distance": _mean(ap_dist),
            "mean_an_distance": _mean(p.space.pair_distance(an_a, an_n)),
        }
        return tuple(t.long() for t in result)


def _join(
    a: torch.Tensor, pos: torch.Tensor, na: torch.Tensor, nn: torch.Tensor, n_anchors: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Triplets: every (a, p) row combined with every negative of its anchor."""
    order = torch.argsort(na, stable=True)
    na, nn = na[order], nn[order]
    count = torch.bincount(na, minlength=n_anchors)
    start = torch.cumsum(count, 0) - count
    c = count[a]
    total = int(c.sum())
    row = torch.repeat_interleave(torch.arange(len(a), device=a.device), c)
    first = torch.cumsum(c, 0) - c
    offs = torch.arange(total, device=a.device) - torch.repeat_interleave(first, c)
    n = nn[torch.repeat_interleave(start[a], c) + offs]
    return a[row], pos[row], n


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


def as_config(config: SamplerConfig | dict[str, Any] | None) -> SamplerConfig:
    if config is None:
        return SamplerConfig()
    if isinstance(config, SamplerConfig):
        return config
    return SamplerConfig.from_dict(config)
