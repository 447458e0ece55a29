"""`NearestPositiveMiner`: the sampler as a pytorch-metric-learning miner."""

from __future__ import annotations

from typing import Any

import torch

try:
    from pytorch_metric_learning.distances import CosineSimilarity, LpDistance
    from pytorch_metric_learning.miners import BaseMiner
except ImportError as exc:  # the rest of the package works without PML
    raise ImportError(
        "NearestPositiveMiner needs pytorch-metric-learning: "
        "pip install 'nearest-positive[pml]' (select, NearestPositive and the reference "
        "losses work without it)"
    ) from exc

from ._ids import content_ids
from ._validation import check_choice
from .mining import Miner, MiningOptions

SELF_MATCH: tuple[str, ...] = ("auto", "none")


def _distance_kind(distance: Any, normalize: bool) -> tuple[str, bool, Any]:
    """(kind, normalize, PML distance object or None) from a name or a PML distance."""
    if isinstance(distance, str):
        return distance, normalize, None
    if isinstance(distance, CosineSimilarity):
        return "cosine", True, distance
    if isinstance(distance, LpDistance) and distance.p == 2 and distance.power in (1, 2):
        kind = "euclidean" if distance.power == 1 else "squared_euclidean"
        return kind, bool(distance.normalize_embeddings), distance
    raise ValueError(
        f"distance {distance!r} is not supported: use 'euclidean', 'squared_euclidean', "
        "'cosine', LpDistance(p=2, power=1 or 2) or CosineSimilarity()"
    )


class NearestPositiveMiner(BaseMiner):
    """PML miner returning nearest-positive tuples; usable wherever PML takes a miner.

    Args:
        negatives: ``"all"`` (default), ``"semihard"``, ``"hardest"``,
            ``"distance-weighted"``.
        output: ``"triplets"`` (default, ``(a, p, n)``) or ``"pairs"`` (``(a1, p, a2, n)``).
        distance: ``"euclidean"`` (default), ``"squared_euclidean"``, ``"cosine"``, or a PML
            ``LpDistance(p=2)`` / ``CosineSimilarity`` (its normalisation is used).
        normalize: L2-normalise before choosing (default True; ignored for a PML distance).
        positives: ``"nearest"`` (default), ``"all"``, ``"random"``, ``"hardest"``.
        tile_size: anchor rows per tile (default None: automatic).
        on_missing: ``"drop"`` (default) or ``"error"``.
        seed: seed of the miner's generator (default None).
        self_match: how anchors are recognised in a separate reference set when no ids are
            passed: ``"auto"`` (default): reference rows bitwise equal to an anchor, with
            its label, are its own copies (this is what CrossBatchMemory stores); ``"none"``:
            the reference set shares no sample with the batch.

    ``forward(embeddings, labels, ref_emb=None, ref_labels=None, *, ids=None, ref_ids=None)``;
    ``last_diagnostics`` after each call.
    """

    def __init__(
        self,
        negatives: str = "all",
        output: str = "triplets",
        distance: Any = "euclidean",
        normalize: bool = True,
        positives: str = "nearest",
        tile_size: int | None = None,
        on_missing: str = "drop",
        seed: int | None = None,
        self_match: str = "auto",
        **kwargs: Any,
    ) -> None:
        kind, normalize, pml_distance = _distance_kind(distance, normalize)
        if pml_distance is not None:
            kwargs["distance"] = pml_distance
        super().__init__(**kwargs)
        self.self_match = check_choice(self_match, "self_match", SELF_MATCH)
        self.core = Miner(MiningOptions(
            positives=positives, negatives=negatives,
            output="triplets" if output == "auto" else output, distance=kind,
            normalize=normalize, tile_size=tile_size, on_missing=on_missing, seed=seed,
        ))
        self.last_diagnostics = dict(self.core.last_diagnostics)
        self._ids: torch.Tensor | None = None
        self._ref_ids: torch.Tensor | None = None

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_emb: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
        *,
        ids: torch.Tensor | None = None,
        ref_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        self._ids, self._ref_ids = ids, ref_ids
        try:
            return super().forward(embeddings, labels, ref_emb, ref_labels)
        finally:
            self._ids = self._ref_ids = None

    def mine(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_emb: torch.Tensor,
        ref_labels: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        ids, ref_ids = self._ids, self._ref_ids
        if ref_emb is embeddings:
            out = self.core(embeddings, labels, ids=ids)
        else:
            if ids is None and ref_ids is None and self.self_match == "auto":
                common = torch.promote_types(embeddings.dtype, ref_emb.dtype)
                ids = content_ids(embeddings, labels, common)
                ref_ids = content_ids(ref_emb, ref_labels, common)
            out = self.core(embeddings, labels, ref_emb, ref_labels, ids=ids, ref_ids=ref_ids)
        self.last_diagnostics = dict(self.core.last_diagnostics)
        return out
