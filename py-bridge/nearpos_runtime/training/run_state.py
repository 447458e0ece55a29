"""What one training run is made of (:class:`RunParts`) and what it has done (:class:`Progress`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .data import DataBundle
from .sampler import BatchSampler
from .selection import Best


@dataclass
class RunParts:
    """Built once by the set-up phase; every later phase reads it."""

    device: torch.device
    data: DataBundle
    sampler: BatchSampler
    model: nn.Module
    loss_fn: nn.Module
    params: list[nn.Parameter]
    opt: torch.optim.Optimizer
    base_lrs: list[float]
    aug: torch.Generator
    spec: dict[str, Any]
    in_features: int
    #: What the step calls: ``model``, or its DistributedDataParallel wrapper.
    net: nn.Module

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


@dataclass
class Progress:
    """What the step loop accumulates; a checkpoint holds it and resume restores it."""

    start: int = 0
    step: int = 0
    losses: list[float] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    epoch_sum: float = 0.0
    best: Best | None = None
    last_ckpt: str | None = None
    eval_time: float = 0.0
    t_log: float = 0.0
    n_log: int = 0
