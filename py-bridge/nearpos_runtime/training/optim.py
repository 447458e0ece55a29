"""Optimizer and learning-rate schedule of a training config."""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import CosineSchedule, StepSchedule, TrainConfig


def build_optimizer(cfg: TrainConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    o = cfg.optimizer
    if o.kind == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    if o.kind == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
    if o.kind == "sgd":
        return torch.optim.SGD(params, lr=o.lr, weight_decay=o.weight_decay, momentum=o.momentum)
    return torch.optim.RMSprop(params, lr=o.lr, weight_decay=o.weight_decay, momentum=o.momentum)


def lr_factor(cfg: TrainConfig, step: int) -> float:
    """Learning-rate multiplier for the update of 1-based ``step``."""
    s = cfg.schedule
    if isinstance(s, CosineSchedule):
        if step <= s.warmup_steps:
            return step / max(1, s.warmup_steps)
        span = max(1, cfg.steps - s.warmup_steps)
        t = (step - s.warmup_steps) / span
        return s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))
    if isinstance(s, StepSchedule):
        return s.gamma ** ((step - 1) // s.step_size)
    return 1.0
