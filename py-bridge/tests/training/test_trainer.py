"""Trainer: determinism, exact resume, events, checkpoints, bad input (real plugin, real torch)."""

from __future__ import annotations

import pytest
import torch

from nearpos_runtime.training import (
    TrainConfig,
    Trainer,
    TrainingCancelled,
    TrainingError,
    evaluate_embeddings,
    load_checkpoint,
)
from nearpos_runtime.training.data import DataError, load_data
from nearpos_runtime.training.losses import PluginError
from nearpos_runtime.training.models import build_model
from nearpos_runtime.training.trainer import embed_samples

SYN = {"kind": "synthetic", "classes": 4, "modes_per_class": 2, "dim": 8, "per_mode": 20}


def config(**over):
    base = {
        "data": SYN,
        "model": {"kind": "mlp", "hidden": [32], "embedding_dim": 8},
        "loss": {"name": "triplet", "config": {"margin": 0.2}},
        "sampler": {"name": "nearest-positive", "config": {}},
        "batch": {"classes": 4, "per_class": 4},
        "optimizer": {"kind": "adam", "lr": 0.01},
        "steps": 12,
        "eval": {"ks": [1, 2], "nmi": False},
        "device": "cpu",
    }
    base.update(over)
    return TrainConfig.model_validate(base)


def run(cfg, cancel=None):
    events: list[tuple[str, dict]] = []
    res = Trainer(cfg, on_event=lambda t, d: events.append((t, d)), cancel=cancel).run()
    return res, events


def test_same_seed_identical_and_other_seed_differs():
    a, _ = run(config(seed=3))
    b, _ = run(config(seed=3))
    c, _ = run(config(seed=4))
    assert a.losses == b.losses and a.metrics == b.metrics
    assert a.losses != c.losses


def test_training_beats_untrained_model():
    cfg = config(steps=60, seed=1, data={**SYN, "noise": 1.0})
    data = load_data(cfg.data)
    torch.manual_seed(cfg.seed)
    untrained = build_model(cfg.model, 8)
    e = embed_samples(untrained, data.test, torch.device("cpu"))
    before = evaluate_embeddings(e, data.test.labels, ks=[1], with_nmi=False)["coarse"]
    res, _ = run(cfg)
    assert res.metrics["coarse"]["map@r"] > before["map@r"] + 0.05
    assert "fine" in res.metrics


def test_events_and_checkpoints(tmp_path):
    ckdir = tmp_path / "ck"
    cfg = config(eval_every=6, checkpoint={"dir": str(ckdir), "every": 5}, log_every=2)
    res, events = run(cfg)
    kinds = [t for t, _ in events]
    steps = [d["step"] for t, d in events if t == "step"]
    assert steps == [2, 4, 6, 8, 10, 12]
    assert [d["step"] for t, d in events if t == "eval"] == [6, 12]
    assert [d["step"] for t, d in events if t == "checkpoint"] == [5, 10, 12]
    assert "epoch" in kinds  # 112 train samples / 16 per batch: 7 steps per epoch
    step = next(d for t, d in events if t == "step")
    assert {"loss", "lr", "epoch", "samples_per_s", "diagnostics"} <= set(step)
    assert res.checkpoint == str(ckdir / "step-12.pt")
    assert [h["step"] for h in res.history] == [6, 12]
    state = load_checkpoint(res.checkpoint)
    assert state["step"] == 12 and not list(ckdir.glob(".*tmp"))


def test_kill_and_resume_equals_uninterrupted(tmp_path):
    full, _ = run(config(seed=5, checkpoint={"dir": str(tmp_path / "a"), "every": 4}))

    def stop_at_7() -> bool:
        stop_at_7.calls += 1  # type: ignore[attr-defined]
        return stop_at_7.calls > 7  # type: ignore[attr-defined]

    stop_at_7.calls = 0  # type: ignore[attr-defined]
    with pytest.raises(TrainingCancelled) as info:
        run(config(seed=5, checkpoint={"dir": str(tmp_path / "b"), "every": 4}), cancel=stop_at_7)
    assert info.value.step == 7
    resumed, events = run(config(seed=5, resume_from=str(tmp_path / "b" / "step-4.pt")))
    assert [d["step"] for t, d in events if t == "step"][0] == 5
    assert resumed.losses == full.losses
    assert resumed.metrics == full.metrics
    assert resumed.steps == 12


@pytest.mark.parametrize(
    "schedule",
    [{"kind": "step", "step_size": 3, "gamma": 0.5}, {"kind": "cosine", "warmup_steps": 2}],
)
def test_resume_keeps_the_learning_rate_schedule(tmp_path, schedule):
    # The optimizer state holds the rate scheduled at the checkpoint's step: the schedule
    # must apply to the configured rate again, not compound on top of that one.
    def cfg(**over):
        return config(seed=2, optimizer={"kind": "sgd", "lr": 0.05}, schedule=schedule, **over)

    full, full_events = run(cfg())
    calls = iter(range(100))
    with pytest.raises(TrainingCancelled):
        run(cfg(checkpoint={"dir": str(tmp_path), "every": 6}), cancel=lambda: next(calls) >= 8)
    resumed, events = run(cfg(resume_from=str(tmp_path / "step-6.pt")))
    lrs = [d["lr"] for t, d in events if t == "step"]
    assert lrs == [d["lr"] for t, d in full_events if t == "step"][6:]
    assert resumed.losses == full.losses


def test_resume_with_other_model_is_refused(tmp_path):
    run(config(checkpoint={"dir": str(tmp_path), "every": 0}, steps=2))
    other = config(model={"kind": "mlp", "hidden": [16], "embedding_dim": 8})
    with pytest.raises(TrainingError, match="holds model"):
        run(other.model_copy(update={"resume_from": str(tmp_path / "step-2.pt")}))


def test_non_finite_training_names_the_step():
    x = torch.full((24, 4), 3e38)
    x[::2] *= -1
    data = {"kind": "tensors", "train": {"x": x, "labels": torch.arange(24) % 4}}
    with pytest.raises(TrainingError, match=r"NaN or Inf at step 1"):
        run(config(data=data))


def test_unknown_loss_and_sampler():
    with pytest.raises(PluginError, match="unknown loss 'tripplet'"):
        run(config(loss={"name": "tripplet"}))
    with pytest.raises(PluginError, match="unknown sampler 'nearest'; known: .*nearest-positive"):
        run(config(sampler={"name": "nearest"}))


def test_k_larger_than_class_and_singleton():
    x = torch.randn(13, 4)
    labels = torch.tensor([0] * 6 + [1] * 6 + [2])
    data = {"kind": "tensors", "train": {"x": x, "labels": labels}}
    with pytest.raises(DataError, match="single sample"):
        run(config(data=data, batch={"classes": 2, "per_class": 3}))
    res, events = run(
        config(data=data, steps=2, batch={"classes": 2, "per_class": 8, "singleton_class": "drop"})
    )
    msgs = [d["message"] for t, d in events if t == "warning"]
    assert any("single sample" in m for m in msgs) and any("replacement" in m for m in msgs)


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="batch.per_clas"):
        config(batch={"classes": 4, "per_clas": 4})
    with pytest.raises(ValueError, match="optimizer.kind"):
        config(optimizer={"kind": "adagrad"})
    with pytest.warns(UserWarning, match="per_class = 2"):
        config(batch={"classes": 4, "per_class": 2})
