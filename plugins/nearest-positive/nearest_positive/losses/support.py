"""Which losses a positive sampler can drive, and how they are called."""

from __future__ import annotations

from torch import nn

from .base import TupleLoss

#: PML 2.9 losses that read (a1, p, a2, n) pairs from indices_tuple: full effect.
PML_PAIR_LOSSES: tuple[str, ...] = (
    "ContrastiveLoss", "SignalToNoiseRatioContrastiveLoss", "NTXentLoss", "SupConLoss",
    "MultiSimilarityLoss", "CircleLoss", "IntraPairVarianceLoss", "TupletMarginLoss",
    "LiftedStructureLoss", "GeneralizedLiftedStructureLoss", "AngularLoss",
    "ThresholdConsistentMarginLoss",
)
#: PML 2.9 losses that read (a, p, n) triplets: full effect.
PML_TRIPLET_LOSSES: tuple[str, ...] = (
    "TripletMarginLoss", "MarginLoss", "DynamicSoftMarginLoss", "HistogramLoss",
)
#: PML losses that cannot take a reference set (no memory, no distributed gather).
PML_NO_REF: tuple[str, ...] = ("HistogramLoss",)

_WEIGHTS = (
    "it turns indices_tuple into per-sample weights (only how often each sample occurs "
    "survives), so the choice of positive has no effect"
)
_PROXY = (
    "it compares samples with learned class proxies/weights, not with other samples, and "
    + _WEIGHTS
)
PML_REFUSED: dict[str, str] = {
    "FastAPLoss": "it ranks the whole batch and " + _WEIGHTS,
    "NCALoss": "it uses all pairs through a softmax and " + _WEIGHTS,
    "SmoothAPLoss": "it ranks the whole batch and does not read indices_tuple",
    "ArcFaceLoss": _PROXY, "CosFaceLoss": _PROXY, "SphereFaceLoss": _PROXY,
    "SubCenterArcFaceLoss": _PROXY, "NormalizedSoftmaxLoss": _PROXY,
    "LargeMarginSoftmaxLoss": _PROXY, "ProxyAnchorLoss": _PROXY, "ProxyNCALoss": _PROXY,
    "SoftTripleLoss": _PROXY,
    "NPairsLoss": "it keeps only one positive pair per label, so most chosen pairs are "
    "discarded",
    "ManifoldLoss": "it reads indices_tuple as cluster centres, not as tuples",
    "InstanceLoss": "it rejects indices_tuple", "P2SGradLoss": "it rejects indices_tuple",
    "PNPLoss": "it rejects indices_tuple", "RankedListLoss": "it rejects indices_tuple",
    "VICRegLoss": "it is self-supervised and takes no labels or tuples",
    "CrossBatchMemory": "it is a wrapper with its own miner call: pass "
    "NearestPositiveMiner as its miner, or use memory_size here",
    "SelfSupervisedLoss": "it builds its own pairs from two views",
    "MultipleLosses": "wrap each loss separately",
}

TORCH_TRIPLET_LOSSES: tuple[str, ...] = ("TripletMarginLoss", "TripletMarginWithDistanceLoss")


def _is_pml(loss: nn.Module) -> bool:
    return type(loss).__module__.startswith("pytorch_metric_learning.")


def classify(loss: nn.Module, needs_ref: bool = False) -> tuple[str, str]:
    """(family, tuple form) for a supported loss, else ValueError naming it and why.

    family: "own" (this package), "pml" or "torch"; form: "triplets" or "pairs".
    """
    name = type(loss).__name__
    if not isinstance(loss, nn.Module):
        raise TypeError(f"loss must be a torch.nn.Module, got {type(loss).__name__}")
    if isinstance(loss, TupleLoss):
        return "own", loss.consumes
    if _is_pml(loss):
        if name in PML_REFUSED:
            raise ValueError(f"{name} cannot be driven by a positive sampler: {PML_REFUSED[name]}")
        if needs_ref and name in PML_NO_REF:
            raise ValueError(
                f"{name} does not accept a reference set, so it cannot be used with "
                "memory_size > 0 or distributed=True"
            )
        if name in PML_PAIR_LOSSES:
            return "pml", "pairs"
        if name in PML_TRIPLET_LOSSES:
            return "pml", "triplets"
        raise ValueError(
            f"{name} is not a known pair or triplet consumer of pytorch-metric-learning 2.9; "
            f"supported: {', '.join(PML_PAIR_LOSSES + PML_TRIPLET_LOSSES)}"
        )
    if type(loss).__module__.startswith("torch.nn") and name in TORCH_TRIPLET_LOSSES:
        return "torch", "triplets"
    raise ValueError(
        f"{name} is not supported: wrap a pytorch-metric-learning pair/triplet loss, "
        "torch.nn.TripletMarginLoss / TripletMarginWithDistanceLoss, or a loss from "
        "nearest_positive.losses"
    )

