"""Image input pipeline benchmark: nearpos's training batches against a plain DataLoader.

Writes its own data set (a CUB layout of random-content JPEGs in a temporary directory),
then measures images per second of nearpos's training input pipeline, decode + augment +
collate into P x K batches of `--crop` px crops (``ImageSamples.train_batches``: the P x K
sampler as the DataLoader's batch_sampler, augmentation seeded per sample), at each
``--workers`` count, beside the reference: a plain ``torch.utils.data.DataLoader`` over the
same files, ``batch_size`` = P x K, shuffled, default collate, the same decode and augment
functions (one generator per index). The target is nearpos / reference >= 0.9x.

Each measurement creates a fresh iterator (worker start-up included), takes ``--batches``
batches and stops the workers. Rounds run the two pipelines at each worker count, taking turns
at going first, after one warm-up round (file cache, imports); a rate is the median over ``--rounds``, the
ratio the median of the rounds' ratios (each pair ran back to back, under the same load).

    python benchmarks/perf/images/run.py                     # 0, 1, 2 workers; results.json
    python benchmarks/perf/images/run.py --workers 0,4,8 --batches 60
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from nearpos_runtime.training.data.images import ImageSamples
from nearpos_runtime.training.data.transforms import read_image, train_transform
from nearpos_runtime.training.sampler import ClassBalancedSampler
from PIL import Image
from torch.utils.data import DataLoader, Dataset

HERE = Path(__file__).resolve().parent


def write_images(root: Path, n: int, classes: int, side: int, seed: int = 0) -> ImageSamples:
    """``n`` JPEGs, ``side`` px high and ``side``..1.25 x ``side`` wide: coarse random
    colour fields (bilinear from 8 x 8) plus pixel noise, so they compress like photos.
    Returned as nearpos training samples (``classes`` labels in turn)."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        w = side + int(rng.integers(0, side // 4 + 1))
        coarse = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        img = np.asarray(coarse.resize((w, side), Image.BILINEAR), dtype=np.int16)
        img = (img + rng.integers(-12, 13, img.shape)).clip(0, 255).astype(np.uint8)
        paths.append(root / f"{i}.jpg")
        Image.fromarray(img).save(paths[-1], quality=90)
    labels = torch.arange(n) % classes
    return ImageSamples(labels, None, paths, image_size=224, resize=256)


class Reference(Dataset):
    """The plain way: index -> decode -> augment (a generator per index)."""

    def __init__(self, paths: list[Path], crop: int, seed: int) -> None:
        self.paths, self.crop, self.seed = paths, crop, seed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        return train_transform(read_image(self.paths[i]), self.crop, g)


def time_nearpos(train: ImageSamples, workers: int, args: argparse.Namespace) -> float:
    train.workers = workers
    sampler = ClassBalancedSampler(train.labels, args.classes, args.per_class, seed=0)
    t0 = time.perf_counter()
    source = train.train_batches(sampler, 0, torch.Generator(), pin=False)
    try:
        n = sum(next(source)[1].shape[0] for _ in range(args.batches))
    finally:
        source.close()
    return n / (time.perf_counter() - t0)


def time_reference(train: ImageSamples, workers: int, args: argparse.Namespace) -> float:
    batch = args.classes * args.per_class
    loader = DataLoader(
        Reference(train.paths, args.crop, 0),
        batch_size=batch,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
        num_workers=workers,
        drop_last=True,
    )
    t0 = time.perf_counter()
    it = iter(loader)
    n = 0
    for _ in range(args.batches):
        n += next(it).shape[0]
    del it  # stops the workers, as close() does on our side
    return n / (time.perf_counter() - t0)


def measure(train: ImageSamples, args: argparse.Namespace) -> list[dict]:
    workers = [int(w) for w in args.workers.split(",")]
    runs: dict[tuple[str, int], list[float]] = {}
    for r in range(args.rounds + 1):
        pair = [("nearpos", time_nearpos), ("reference", time_reference)]
        for w in workers:
            for name, fn in pair if r % 2 else pair[::-1]:  # who goes first alternates
                rate = fn(train, w, args)
                if r:  # round 0 warms the file cache and the imports
                    runs.setdefault((name, w), []).append(rate)
        print(f"round {r}/{args.rounds} done", file=sys.stderr)
    rows = []
    for w in workers:
        ours, ref = runs[("nearpos", w)], runs[("reference", w)]
        # Paired: the two ran back to back in a round, under the same machine load.
        ratio = statistics.median(a / b for a, b in zip(ours, ref, strict=True))
        rows.append({"workers": w, "nearpos": statistics.median(ours),
                     "reference": statistics.median(ref), "ratio": ratio,
                     "nearpos_runs": runs[("nearpos", w)],
                     "reference_runs": runs[("reference", w)]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--images", type=int, default=2000, help="JPEGs written (2000)")
    ap.add_argument("--side", type=int, default=256, help="image height in px (256)")
    ap.add_argument("--crop", type=int, default=224, help="training crop in px (224)")
    ap.add_argument("--classes", type=int, default=16, help="P: classes per batch (16)")
    ap.add_argument("--per-class", type=int, default=4, help="K: samples per class (4)")
    ap.add_argument("--workers", default="0,1,2", help="worker counts (0,1,2)")
    ap.add_argument("--batches", type=int, default=30, help="batches per measurement (30)")
    ap.add_argument("--rounds", type=int, default=5, help="measured rounds (5)")
    ap.add_argument("--out", type=Path, default=HERE / "results.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="nearpos-images-") as tmp:
        train = write_images(Path(tmp), args.images, 100, args.side)
        train.image_size = args.crop
        rows = measure(train, args)
    print(f"\n{args.images} JPEGs ({args.side} px), P x K = {args.classes} x {args.per_class}, "
          f"{args.crop} px crops, images/s (median of {args.rounds} rounds)\n")
    print("| workers | nearpos | reference DataLoader | nearpos / reference (paired) |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['workers']} | {r['nearpos']:.0f} | {r['reference']:.0f} | "
              f"{r['ratio']:.2f}x |")
    meta = {"command": " ".join(["python", *sys.argv]), "torch": torch.__version__,
            "python": platform.python_version(), "cpus": os.cpu_count(),
            "machine": platform.machine(), "args": {k: str(v) for k, v in vars(args).items() if k != "out"}}
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
