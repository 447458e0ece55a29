"""Best-step selection: the evaluation step with the best validation metric."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .errors import ConfigError


@dataclass
class Best:
    """The selected evaluation step: its validation metrics and a CPU copy of the weights."""

    step: int
    value: float
    val_metrics: dict[str, dict[str, float]]
    model: dict[str, torch.Tensor]

    def state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "value": self.value,
            "val_metrics": self.val_metrics,
            "model": self.model,
        }

    @classmethod
    def from_state(cls, b: dict[str, Any]) -> Best:
        return cls(int(b["step"]), b["value"], b["val_metrics"], b["model"])


def select(
    best: Best | None, step: int, val: dict[str, dict[str, float]], key: str, model: nn.Module
) -> Best | None:
    """``best`` updated with the evaluation of ``step`` (validation metrics ``val``)."""
    value = metric(val, key)
    # Strictly better only: on a tie the earlier step stays selected.
    if best is None or value > best.value:
        return Best(step, value, val, state_copy(model))
    return best


def state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def metric(metrics: dict[str, dict[str, float]], key: str) -> float:
    """Value of 'coarse.map@r'-style ``key``; ConfigError listing what exists."""
    group, _, name = key.partition(".")
    value = metrics.get(group, {}).get(name)
    if value is None:
        have = [f"{g}.{n}" for g, ms in metrics.items() for n in ms]
        raise ConfigError(f"select_on: no validation metric {key!r}; have {', '.join(have)}")
    return float(value)
