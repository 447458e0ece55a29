"""Image input pipeline: DataLoader workers, P x K batches, seeded augmentation, errors.

Real JPEG files (PIL), real DataLoader worker processes, real trainer runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nearpos_runtime.training import TrainConfig, Trainer
from nearpos_runtime.training.config import ImageFolderData
from nearpos_runtime.training.data import DataError, load_data
from nearpos_runtime.training.data.images import ImageSamples
from nearpos_runtime.training.sampler import ClassBalancedSampler
from nearpos_runtime.training.trainer import embed_samples

CLASSES, PER_CLASS = 6, 5


def jpeg_folder(root: Path, seed: int = 0) -> Path:
    """A CUB layout of random-content JPEGs of varied sizes: classes 1-3 train, 101-103
    test."""
    from PIL import Image

    g = torch.Generator().manual_seed(seed)
    lines, labels = [], []
    for n in range(CLASSES * PER_CLASS):
        cls = [1, 2, 3, 101, 102, 103][n // PER_CLASS]
        h, w = 20 + int(torch.randint(12, (1,), generator=g)), 24 + n % 7
        pixels = torch.randint(256, (h, w, 3), generator=g, dtype=torch.uint8).numpy()
        rel = f"{cls:03d}/{n}.jpg"
        (root / "images" / f"{cls:03d}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / "images" / rel, quality=90)
        lines.append(f"{n + 1} {rel}")
        labels.append(f"{n + 1} {cls}")
    (root / "images.txt").write_text("\n".join(lines) + "\n")
    (root / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    return root


def images(root: Path, workers: int) -> ImageSamples:
    spec = ImageFolderData(kind="cub", root=str(root), image_size=16, resize=18, workers=workers)
    train = load_data(spec).train
    assert isinstance(train, ImageSamples) and train.workers == workers
    return train


def draw(train: ImageSamples, batches: int, seed: int = 7) -> list[tuple[torch.Tensor, ...]]:
    sampler = ClassBalancedSampler(train.labels, 3, 4, seed)
    source = train.train_batches(sampler, seed, torch.Generator(), pin=False)
    try:
        return [(*next(source), *source.sampler_state().values()) for _ in range(batches)]
    finally:
        source.close()


def test_same_batches_for_0_and_2_workers_bitwise(tmp_path: Path) -> None:
    root = jpeg_folder(tmp_path)
    inline, workers = draw(images(root, 0), 6), draw(images(root, 2), 6)
    reference = ClassBalancedSampler(images(root, 0).labels, 3, 4, seed=7)
    for (idx0, x0, gen0, n0), (idx2, x2, gen2, n2) in zip(inline, workers, strict=True):
        assert torch.equal(idx0, reference.next_batch())  # the sampler's own batches
        assert torch.equal(idx0, idx2)
        assert x0.shape == (12, 3, 16, 16) and torch.equal(x0, x2)
        # The state as of the batch handed out, not of the batches prefetched after it.
        assert torch.equal(gen0, gen2) and torch.equal(gen0, reference.generator.get_state())
        assert int(n0) == int(n2) == reference.batches
    assert not torch.equal(inline[0][1], draw(images(root, 0), 1, seed=8)[0][1])


def test_augmentation_follows_the_draw_not_the_image(tmp_path: Path) -> None:
    # The same image drawn twice is augmented twice, differently; the same draw is the same.
    train = images(jpeg_folder(tmp_path), 0)
    decode = train.decoder(train=True, seed=3)
    a, b, again = decode[(0, 4)], decode[(1, 4)], decode[(0, 4)]
    assert isinstance(a, torch.Tensor) and not torch.equal(a, b) and torch.equal(a, again)


def test_eval_batches_and_embeddings_do_not_depend_on_workers(tmp_path: Path) -> None:
    root = jpeg_folder(tmp_path)
    a, b = images(root, 0), images(root, 2)
    xa = torch.cat(list(a.eval_batches(4, pin=False)))
    xb = torch.cat(list(b.eval_batches(4, pin=False)))
    assert xa.shape == (len(a), 3, 16, 16) and torch.equal(xa, xb)
    assert torch.equal(xa, a.inputs(torch.arange(len(a)), train=False))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 4))
    cpu = torch.device("cpu")
    assert torch.equal(embed_samples(model, a, cpu, 5), embed_samples(model, b, cpu, 5))


@pytest.mark.parametrize("workers", [0, 2])
def test_unreadable_file_is_a_data_error_naming_it(tmp_path: Path, workers: int) -> None:
    root = jpeg_folder(tmp_path)
    bad = root / "images" / "002" / "7.jpg"
    bad.write_bytes(b"not a jpeg at all")
    train = images(root, workers)
    with pytest.raises(DataError, match=rf"cannot read image {bad}: UnidentifiedImageError"):
        draw(train, 20)
    bad.unlink()
    with pytest.raises(DataError, match=rf"image file not found: {bad}"):
        draw(train, 20)
    with pytest.raises(DataError, match=rf"image file not found: {bad}"):
        list(train.eval_batches(4, pin=False))


def config(root: Path, workers: int, **over: object) -> TrainConfig:
    base = {
        "data": {"kind": "cub", "root": str(root), "image_size": 16, "resize": 18,
                 "workers": workers},
        "model": {"kind": "mlp", "hidden": [16], "embedding_dim": 8},
        "batch": {"classes": 3, "per_class": 4},
        "optimizer": {"kind": "adam", "lr": 0.01},
        "steps": 6,
        "eval": {"ks": [1], "nmi": False},
        "device": "cpu",
        "seed": 4,
    }
    return TrainConfig.model_validate(base | over)


def test_training_on_images_same_for_0_and_2_workers_and_resumes_exactly(tmp_path) -> None:
    root = jpeg_folder(tmp_path / "data")
    inline = Trainer(config(root, 0)).run()
    two = Trainer(config(root, 2, checkpoint={"dir": str(tmp_path / "ck"), "every": 3})).run()
    assert inline.losses == two.losses and inline.metrics == two.metrics
    resumed = Trainer(config(root, 2, resume_from=str(tmp_path / "ck" / "step-3.pt"))).run()
    assert resumed.losses == inline.losses
