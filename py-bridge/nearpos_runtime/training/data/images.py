"""Image data sets in their standard local layouts (never downloaded).

Layouts are described in docs/training.md. Images are decoded with PIL and transformed
with torch ops (torchvision is optional and not used here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..config import ImageFolderData
from .base import DataBundle, DataError, Samples

_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def _read_image(path: Path) -> torch.Tensor:
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - pillow is in requirements.txt
        raise DataError("image data sets need Pillow (pip install pillow)") from exc
    with Image.open(path) as im:
        rgb = im.convert("RGB")
        t = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8)
        return t.view(rgb.height, rgb.width, 3).permute(2, 0, 1).float().div_(255)


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
    return (_center_crop(_resize_short(img, resize), size) - _MEAN) / _STD


def train_transform(img: torch.Tensor, size: int, g: torch.Generator | None) -> torch.Tensor:
    """Random resized crop (scale 0.16-1, ratio 3/4-4/3) and horizontal flip, seeded."""
    h, w = img.shape[-2:]
    r = torch.rand(4, generator=g).tolist()
    area = h * w * (0.16 + 0.84 * r[0])
    ratio = torch.tensor([3 / 4, 4 / 3]).log()
    aspect = float(torch.exp(ratio[0] + (ratio[1] - ratio[0]) * r[1]))
    cw = min(w, max(1, round((area * aspect) ** 0.5)))
    ch = min(h, max(1, round((area / aspect) ** 0.5)))
    top, left = int(r[2] * (h - ch + 1)), int(r[3] * (w - cw + 1))
    crop = img[:, top : top + ch, left : left + cw]
    out = F.interpolate(crop[None], size=(size, size), mode="bilinear", align_corners=False)[0]
    if bool(torch.rand(1, generator=g) < 0.5):
        out = out.flip(-1)
    return (out - _MEAN) / _STD


@dataclass
class ImageSamples(Samples):
    paths: list[Path] = field(default_factory=list)
    image_size: int = 224
    resize: int = 256

    def inputs(
        self, index: torch.Tensor, train: bool, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        out = []
        for i in index.tolist():
            path = self.paths[i]
            if not path.is_file():
                raise DataError(f"image file not found: {path}")
            img = _read_image(path)
            if train:
                out.append(train_transform(img, self.image_size, generator))
            else:
                out.append(eval_transform(img, self.resize, self.image_size))
        return torch.stack(out)

    def subset(self, index: torch.Tensor) -> ImageSamples:
        fine = None if self.fine_labels is None else self.fine_labels[index]
        paths = [self.paths[i] for i in index.tolist()]
        return ImageSamples(self.labels[index], fine, paths, self.image_size, self.resize)


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
            raise DataError("cars196: reading cars_annos.mat needs scipy") from exc
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

    def part(split: str) -> ImageSamples:
        sel = [r for r in rows if r[2] == split][: spec.limit]
        if not sel:
            raise DataError(f"{spec.kind}: split '{split}' is empty under {root}")
        labels = torch.tensor([c for _, c, _ in sel], dtype=torch.long)
        fine = torch.tensor([sup[p] for p, _, _ in sel], dtype=torch.long) if sup else None
        return ImageSamples(
            labels, fine, [root / p for p, _, _ in sel], spec.image_size, spec.resize
        )

    if spec.kind == "inshop":
        query, gallery = part("query"), part("gallery")
        return DataBundle(train=part("train"), test=query, query=query, gallery=gallery)
    return DataBundle(train=part("train"), test=part("test"))
