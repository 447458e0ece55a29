"""Decoding (PIL) and the train and eval transforms of images (torch ops, no torchvision).

Train augmentation draws its randomness from a generator per sample, seeded from
(seed, draw index) by :func:`augment_generator`: a sample's crop and flip do not depend on
which process decodes it, nor on what was decoded before.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .base import DataError

_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
_MASK64 = (1 << 64) - 1


def read_image(path: Path) -> torch.Tensor:
    """RGB pixels as a 3 x H x W uint8 tensor; DataError naming the file when missing."""
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - pillow is in the [images] extra
        raise DataError(
            "image data sets need Pillow (pip install 'nearpos-runtime[images]')"
        ) from exc
    if not path.is_file():
        raise DataError(f"image file not found: {path}")
    with Image.open(path) as im:
        rgb = np.array(im.convert("RGB"))
    return torch.from_numpy(rgb).permute(2, 0, 1)


def _to_float(img: torch.Tensor) -> torch.Tensor:
    return img.float().div_(255)


def _resize_short(img: torch.Tensor, size: int) -> torch.Tensor:
    h, w = img.shape[-2:]
    s = size / min(h, w)
    nh, nw = max(size, round(h * s)), max(size, round(w * s))
    return F.interpolate(img[None], size=(nh, nw), mode="bilinear", align_corners=False)[0]


def _center_crop(img: torch.Tensor, size: int) -> torch.Tensor:
    h, w = img.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return img[:, top : top + size, left : left + size]


def eval_transform(img: torch.Tensor, resize: int, size: int) -> torch.Tensor:
    """Resize the shorter side to ``resize``, centre crop ``size``, normalise (uint8 in)."""
    return (_center_crop(_resize_short(_to_float(img), resize), size) - _MEAN) / _STD


def train_transform(img: torch.Tensor, size: int, g: torch.Generator | None) -> torch.Tensor:
    """Random resized crop (scale 0.16-1, ratio 3/4-4/3) and horizontal flip, seeded
    (uint8 in: only the crop is converted to float)."""
    h, w = img.shape[-2:]
    r = torch.rand(4, generator=g).tolist()
    area = h * w * (0.16 + 0.84 * r[0])
    ratio = torch.tensor([3 / 4, 4 / 3]).log()
    aspect = float(torch.exp(ratio[0] + (ratio[1] - ratio[0]) * r[1]))
    cw = min(w, max(1, round((area * aspect) ** 0.5)))
    ch = min(h, max(1, round((area / aspect) ** 0.5)))
    top, left = int(r[2] * (h - ch + 1)), int(r[3] * (w - cw + 1))
    crop = _to_float(img[:, top : top + ch, left : left + cw])
    out = F.interpolate(crop[None], size=(size, size), mode="bilinear", align_corners=False)[0]
    if bool(torch.rand(1, generator=g) < 0.5):
        out = out.flip(-1)
    return (out - _MEAN) / _STD


def _splitmix64(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def augment_generator(seed: int, draw: int) -> torch.Generator:
    """The generator of the ``draw``-th sample drawn for training (0-based, over the whole
    run) under ``seed``: well mixed, so neighbouring draws and seeds are unrelated."""
    return torch.Generator().manual_seed(_splitmix64(_splitmix64(seed) ^ draw))
