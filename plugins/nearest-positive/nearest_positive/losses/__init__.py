"""Reference losses (no PML needed) and the by-name loss factory."""

from __future__ import annotations

from typing import Any

from torch import nn

from .base import TupleLoss
from .contrastive import ContrastiveLoss
from .margin import MarginLoss
from .multi_similarity import MultiSimilarityLoss
from .support import PML_PAIR_LOSSES, PML_TRIPLET_LOSSES, TORCH_TRIPLET_LOSSES, classify
from .triplet import TripletLoss

__all__ = [
    "ContrastiveLoss", "MarginLoss", "MultiSimilarityLoss", "TripletLoss", "TupleLoss",
    "classify", "create_loss", "list_losses",
]

_OWN: dict[str, type[TupleLoss]] = {
    "triplet": TripletLoss,
    "margin": MarginLoss,
    "contrastive": ContrastiveLoss,
    "multi-similarity": MultiSimilarityLoss,
}


def _pml_available() -> bool:
    try:
        import pytorch_metric_learning.losses  # noqa: F401
    except ImportError:
        return False
    return True


def list_losses() -> list[str]:
    """Every name :func:`create_loss` accepts (``pml:*`` only when PML is installed)."""
    names = list(_OWN) + [f"torch:{n}" for n in TORCH_TRIPLET_LOSSES]
    if _pml_available():
        names += [f"pml:{n}" for n in PML_PAIR_LOSSES + PML_TRIPLET_LOSSES]
    return names


def create_loss(name: str, **kwargs: Any) -> nn.Module:
    """Build a loss by name: ``triplet``, ``margin``, ``contrastive``, ``multi-similarity``,
    ``pml:<ClassName>`` (pytorch-metric-learning) or ``torch:TripletMarginLoss`` /
    ``torch:TripletMarginWithDistanceLoss``. Keyword arguments go to the constructor."""
    if not isinstance(name, str):
        raise TypeError(f"loss name must be a string, got {type(name).__name__}")
    if name in _OWN:
        return _OWN[name](**kwargs)
    if name.startswith("torch:") and name[6:] in TORCH_TRIPLET_LOSSES:
        return getattr(nn, name[6:])(**kwargs)
    if name.startswith("pml:"):
        cls_name = name[4:]
        if not _pml_available():
            raise ImportError(
                f"loss {name!r} needs pytorch-metric-learning: "
                "pip install 'nearest-positive[pml]'"
            )
        import pytorch_metric_learning.losses as pml_losses

        cls = getattr(pml_losses, cls_name, None)
        if cls is None:
            raise ValueError(
                f"unknown loss {name!r}: pytorch-metric-learning has no {cls_name}; "
                f"known: {', '.join(list_losses())}"
            )
        loss = cls(**kwargs)
        classify(loss)  # refuse here, not at the first step
        return loss
    raise ValueError(f"unknown loss {name!r}; known: {', '.join(list_losses())}")
