"""Sample containers shared by every data source."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ..sampler import BatchSampler
    from .batches import TrainBatches


class DataError(ValueError):
    """Data that cannot be used, with the reason: the data a call names (its tensors, its
    files, its split and batch settings) is the caller's to fix, hence the code."""

    code = "invalid_params"


@dataclass
class Samples:
    """Labelled samples; subclasses say how inputs are produced for given indices."""

    labels: torch.Tensor
    fine_labels: torch.Tensor | None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def inputs(
        self, index: torch.Tensor, train: bool, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        raise NotImplementedError

    def subset(self, index: torch.Tensor) -> Samples:
        """The samples at ``index`` (a 1-D integer tensor), as the same kind of container."""
        raise NotImplementedError

    def train_batches(
        self, sampler: BatchSampler, seed: int, generator: torch.Generator, pin: bool
    ) -> TrainBatches:
        """The training batches: by default each built on the calling thread when the step
        asks, with ``inputs(index, train=True, generator=generator)``."""
        from .batches import InlineBatches

        return InlineBatches(self, sampler, generator)

    def eval_batches(self, batch_size: int, pin: bool) -> Iterator[torch.Tensor]:
        """Eval inputs of every sample in order, ``batch_size`` at a time."""
        for start in range(0, len(self), batch_size):
            yield self.inputs(torch.arange(start, min(start + batch_size, len(self))), False)


@dataclass
class TensorSamples(Samples):
    x: torch.Tensor = field(default_factory=lambda: torch.empty(0))

    def inputs(
        self, index: torch.Tensor, train: bool, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return self.x[index]

    def subset(self, index: torch.Tensor) -> TensorSamples:
        fine = None if self.fine_labels is None else self.fine_labels[index]
        return TensorSamples(self.labels[index], fine, self.x[index])


@dataclass
class DataBundle:
    """Splits of one data set. ``query``/``gallery`` only for query/gallery protocols,
    ``val`` only with class-disjoint folds (then ``train`` holds the other folds)."""

    train: Samples
    test: Samples
    query: Samples | None = None
    gallery: Samples | None = None
    val: Samples | None = None

    def split(self, name: str) -> Samples:
        if name == "all":
            return concat(self.train, self.test)
        got = getattr(self, name, None)
        if got is None:
            hint = " (set data.folds and data.fold)" if name == "val" else ""
            raise DataError(f"this data set has no '{name}' split{hint}")
        return got


def concat(a: Samples, b: Samples) -> Samples:
    if not (isinstance(a, TensorSamples) and isinstance(b, TensorSamples)):
        raise DataError("split 'all' is only available for tensor data")
    fine = None
    if a.fine_labels is not None and b.fine_labels is not None:
        fine = torch.cat([a.fine_labels, b.fine_labels])
    return TensorSamples(torch.cat([a.labels, b.labels]), fine, torch.cat([a.x, b.x]))


def check_tensor_samples(
    x: torch.Tensor, labels: torch.Tensor, fine: torch.Tensor | None, where: str
) -> TensorSamples:
    """Validate caller-supplied tensors: lengths, dtypes, finiteness, non-empty."""
    if x.ndim < 1 or x.shape[0] == 0:
        raise DataError(f"{where}.x is empty")
    if labels.ndim != 1:
        raise DataError(f"{where}.labels must be 1-D, got shape {list(labels.shape)}")
    if labels.shape[0] != x.shape[0]:
        raise DataError(f"{where}.labels has {labels.shape[0]} rows, {where}.x has {x.shape[0]}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise DataError(f"{where}.labels must be integers, got {labels.dtype}")
    if not x.is_floating_point():
        x = x.float()
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).reshape(x.shape[0], -1).any(1).nonzero()[0, 0])
        raise DataError(f"{where}.x has NaN or Inf (first in row {bad})")
    if fine is not None:
        if fine.ndim != 1 or fine.shape[0] != x.shape[0]:
            raise DataError(
                f"{where}.fine_labels has shape {list(fine.shape)}, expected [{x.shape[0]}]"
            )
        if fine.is_floating_point():
            raise DataError(f"{where}.fine_labels must be integers, got {fine.dtype}")
        fine = fine.long()
    return TensorSamples(labels.long(), fine, x.float())


def stratified_split(
    labels: torch.Tensor, test_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-label random split: indices (train, test), each sorted, fixed by ``seed``."""
    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for lab in torch.unique(labels).tolist():
        idx = (labels == lab).nonzero().flatten()
        idx = idx[torch.randperm(idx.numel(), generator=g)]
        n_test = max(1, round(idx.numel() * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values


def fold_of_classes(labels: torch.Tensor, folds: int) -> dict[int, int]:
    """Fold of each class: classes sorted by label and dealt in turn (i-th class -> i mod folds)."""
    classes = sorted(torch.unique(labels).tolist())
    if len(classes) < folds:
        raise DataError(
            f"data.folds = {folds} but the training split has only {len(classes)} classes; "
            "every fold needs at least one class"
        )
    return {int(c): i % folds for i, c in enumerate(classes)}


def split_folds(train: Samples, folds: int, fold: int) -> tuple[Samples, Samples]:
    """(training folds, validation fold) of ``train``, class-disjoint."""
    of = fold_of_classes(train.labels, folds)
    member = torch.tensor([of[int(c)] == fold for c in train.labels.tolist()], dtype=torch.bool)
    return train.subset((~member).nonzero().flatten()), train.subset(member.nonzero().flatten())
