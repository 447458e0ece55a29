"""Synthetic multi-mode classes: each class a union of Gaussian modes."""

from __future__ import annotations

import torch

from ..config import SyntheticData
from .base import DataBundle, TensorSamples, stratified_split


def load_synthetic(spec: SyntheticData) -> DataBundle:
    g = torch.Generator().manual_seed(spec.seed)
    n_modes = spec.classes * spec.modes_per_class
    centres = torch.randn(n_modes, spec.dim, generator=g)
    mode = torch.arange(n_modes).repeat_interleave(spec.per_mode)
    x = centres[mode] + spec.noise * torch.randn(mode.numel(), spec.dim, generator=g)
    labels = mode // spec.modes_per_class
    tr, te = stratified_split(mode, spec.test_fraction, spec.seed + 1)
    return DataBundle(
        train=TensorSamples(labels[tr], mode[tr], x[tr]),
        test=TensorSamples(labels[te], mode[te], x[te]),
    )
