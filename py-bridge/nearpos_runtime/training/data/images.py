"""Image data sets in their standard local layouts (never downloaded).

Layouts are described in docs/training.md. Images are decoded with PIL and transformed
with torch ops (:mod:`.transforms`; torchvision is optional and not used here), in
DataLoader worker processes for training and embedding (:mod:`.loader`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..config import ImageFolderData
from .base import DataBundle, DataError, Samples
from .loader import DecodeSet, LoaderBatches, eval_batches
from .transforms import eval_transform, read_image, train_transform

if TYPE_CHECKING:
    from ..sampler import BatchSampler


def default_workers() -> int:
    """Decoding processes when ``workers`` is null: one per core this process may use,
    less one for the training thread, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(0, min(8, cores - 1))


@dataclass
class ImageSamples(Samples):
    paths: list[Path] = field(default_factory=list)
    image_size: int = 224
    resize: int = 256
    workers: int = 0
    prefetch: int = 2

    def inputs(
        self, index: torch.Tensor, train: bool, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Decoded on the calling thread, augmented from ``generator`` in turn (the training
        step draws through :meth:`train_batches` instead)."""
        out = []
        for i in index.tolist():
            img = read_image(self.paths[i])
            if train:
                out.append(train_transform(img, self.image_size, generator))
            else:
                out.append(eval_transform(img, self.resize, self.image_size))
        return torch.stack(out)

    def subset(self, index: torch.Tensor) -> ImageSamples:
        fine = None if self.fine_labels is None else self.fine_labels[index]
        paths = [self.paths[i] for i in index.tolist()]
        return ImageSamples(
            self.labels[index], fine, paths, self.image_size, self.resize, self.workers,
            self.prefetch,
        )

    def decoder(self, train: bool, seed: int = 0) -> DecodeSet:
        return DecodeSet(self.paths, self.image_size, self.resize, train, seed)

    def train_batches(
        self, sampler: BatchSampler, seed: int, generator: torch.Generator, pin: bool
    ) -> LoaderBatches:
        """Through a DataLoader; augmentation seeded per sample from (``seed``, draw
        number), so ``generator`` is not used."""
        return LoaderBatches(self.decoder(True, seed), sampler, self.workers, self.prefetch, pin)

    def eval_batches(self, batch_size: int, pin: bool) -> Iterator[torch.Tensor]:
        return eval_batches(self.decoder(False), batch_size, self.workers, self.prefetch, pin)


def _need(root: Path, name: str, kind: str) -> Path:
    p = root / name
    if not p.is_file():
        raise DataError(
            f"{kind}: missing {p} (expected the standard {kind} layout under {root}; "
            "see docs/training.md)"
        )
    return p


def _lines(path: Path, skip: int = 0) -> list[list[str]]:
    rows = [ln.split() for ln in path.read_text().splitlines()[skip:]]
    return [r for r in rows if r]


def _cub(root: Path) -> list[tuple[str, int, str]]:
    images = dict(_lines(_need(root, "images.txt", "cub")))
    labels = _lines(_need(root, "image_class_labels.txt", "cub"))
    out = []
    for img_id, cls in labels:
        c = int(cls)
        out.append(("images/" + images[img_id], c, "train" if c <= 100 else "test"))
    return out


def _cars(root: Path) -> list[tuple[str, int, str]]:
    txt, mat = root / "cars_annos.txt", root / "cars_annos.mat"
    rows: list[tuple[str, int]] = []
    if txt.is_file():
        rows = [(r[0], int(r[1])) for r in _lines(txt)]
    elif mat.is_file():
        try:
            from scipy.io import loadmat
        except ImportError as exc:
            raise DataError(
                "cars196: reading cars_annos.mat needs scipy "
                "(pip install 'nearpos-runtime[images]')"
            ) from exc
        ann = loadmat(str(mat))["annotations"][0]
        rows = [(str(a["relative_im_path"][0]), int(a["class"][0][0])) for a in ann]
    else:
        raise DataError(
            f"cars196: missing {txt} or {mat} (see docs/training.md for the layout)"
        )
    return [(p, c, "train" if c <= 98 else "test") for p, c in rows]


def _sop(root: Path) -> list[tuple[str, int, str]]:
    out = []
    for split, name in (("train", "Ebay_train.txt"), ("test", "Ebay_test.txt")):
        for _img, cls, _sup, path in _lines(_need(root, name, "sop"), skip=1):
            out.append((path, int(cls), split))
    return out


def _sop_super(root: Path) -> dict[str, int]:
    sup = {}
    for name in ("Ebay_train.txt", "Ebay_test.txt"):
        for _img, _cls, s, path in _lines(root / name, skip=1):
            sup[path] = int(s)
    return sup


def _inshop(root: Path) -> list[tuple[str, int, str]]:
    rows = _lines(_need(root, "list_eval_partition.txt", "inshop"), skip=2)
    return [(p, int(item.split("_")[-1]) if "_" in item else int(item), s) for p, item, s in rows]


def load_images(spec: ImageFolderData) -> DataBundle:
    root = Path(spec.root)
    if not root.is_dir():
        raise DataError(f"{spec.kind}: root directory not found: {root}")
    rows = {"cub": _cub, "cars196": _cars, "sop": _sop, "inshop": _inshop}[spec.kind](root)
    sup = _sop_super(root) if spec.kind == "sop" else {}
    workers = default_workers() if spec.workers is None else spec.workers

    def part(split: str) -> ImageSamples:
        sel = [r for r in rows if r[2] == split][: spec.limit]
        if not sel:
            raise DataError(f"{spec.kind}: split '{split}' is empty under {root}")
        labels = torch.tensor([c for _, c, _ in sel], dtype=torch.long)
        fine = torch.tensor([sup[p] for p, _, _ in sel], dtype=torch.long) if sup else None
        return ImageSamples(
            labels, fine, [root / p for p, _, _ in sel], spec.image_size, spec.resize, workers,
            spec.prefetch,
        )

    if spec.kind == "inshop":
        query, gallery = part("query"), part("gallery")
        return DataBundle(train=part("train"), test=query, query=query, gallery=gallery)
    return DataBundle(train=part("train"), test=part("test"))
