"""Nearest-positive ("easy positive") sampling for metric-learning losses.

``select`` chooses positives; ``NearestPositive`` wraps a loss; ``NearestPositiveMiner``
is the pytorch-metric-learning miner (imported on first use: PML is optional).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import SamplerConfig
from .losses import create_loss, list_losses
from .nearest_positive import NearestPositive
from .selection import Selection, select

if TYPE_CHECKING:
    from .nearest_positive_miner import NearestPositiveMiner

__all__ = [
    "NearestPositive", "NearestPositiveMiner", "SamplerConfig", "Selection",
    "create_loss", "list_losses", "select",
]


def __getattr__(name: str) -> Any:
    if name == "NearestPositiveMiner":  # lazily: needs pytorch-metric-learning
        from .nearest_positive_miner import NearestPositiveMiner

        return NearestPositiveMiner
    raise AttributeError(f"module 'nearest_positive' has no attribute {name!r}")
