"""`NearestPositiveMiner`: the sampler as a pytorch-metric-learning miner."""

from __future__ import annotations

from typing import Any

import torch

try:
    from pytorch_metric_learning.miners import BaseMiner
except ImportError as exc:  # the rest of the package works without PML
    raise ImportError(
        "NearestPositiveMiner needs pytorch-metric-learning: "
        "pip install 'nearest-positive[pml]' (select, NearestPositive and the reference "
        "losses work without it)"
    ) from exc

from ._ids import content_ids
from ._validation import check_choice
from .config import SamplerConfig, options_doc
from .mining import Miner

SELF_MATCH: tuple[str, ...] = ("auto", "none")
#: Keyword arguments of PML's BaseMiner that are not sampler options.
PML_MINER_KWARGS: tuple[str, ...] = ("collect_stats",)


class NearestPositiveMiner(BaseMiner):
    """PML miner returning nearest-positive tuples; usable wherever PML takes a miner.

    Keyword arguments only:
        positives: ``"nearest"`` (default), ``"all"``, ``"random"``, ``"hardest"``.
        self_match: how anchors are recognised in a separate reference set when no ids are
            passed: ``"auto"`` (default): reference rows bitwise equal to an anchor, with
            its label, are its own copies (this is what CrossBatchMemory stores); ``"none"``:
            the reference set shares no sample with the batch.
        collect_stats: PML's BaseMiner option, passed on.
        **options: the sampler options below (the wrapper-only ones excepted; unknown
            names are a ValueError listing the allowed ones). ``output="auto"`` means
            triplets. ``distance`` also takes a PML ``LpDistance(p=2)`` or
            ``CosineSimilarity()``: its normalisation applies, and it is the miner's PML
            ``distance``.

    ``forward(embeddings, labels, ref_emb=None, ref_labels=None, *, ids=None, ref_ids=None)``;
    ``last_diagnostics`` after each call.
    """

    def __init__(
        self, *, positives: str = "nearest", self_match: str = "auto", **kwargs: Any
    ) -> None:
        miner_options = SamplerConfig.field_names(wrapper=False)
        allowed = ["positives", "self_match", *PML_MINER_KWARGS, *miner_options]
        options = {k: v for k, v in kwargs.items() if k not in PML_MINER_KWARGS}
        config = SamplerConfig.from_dict(options, allowed)
        pml_kwargs = {k: v for k, v in kwargs.items() if k in PML_MINER_KWARGS}
        if not isinstance(options.get("distance", ""), str):
            pml_kwargs["distance"] = options["distance"]
        super().__init__(**pml_kwargs)
        self.self_match = check_choice(self_match, "self_match", SELF_MATCH)
        self.core = Miner(config, positives)
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


NearestPositiveMiner.__doc__ = (NearestPositiveMiner.__doc__ or "") + options_doc(wrapper=False)
