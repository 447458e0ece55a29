"""Config mistakes end ``train`` and ``loss`` alike: code invalid_params, naming the field
(real runtime process, real plugin)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from nearpos_runtime.client import Client

TRAIN = {
    "data": {"kind": "synthetic", "classes": 3, "dim": 8, "per_mode": 10},
    "model": {"kind": "mlp", "hidden": [16], "embedding_dim": 8},
    "batch": {"classes": 3, "per_class": 4},
    "steps": 2,
    "eval": {"ks": [1], "nmi": False},
    "device": "cpu",
}


LOSS_CONFIG = "params.loss.config"


def error_of(client: Client, method: str, params: dict[str, Any]) -> dict[str, Any]:
    outcome = client.wait(client.submit(method, params), timeout=120)
    assert outcome.terminal is not None
    assert outcome.terminal.msg_type == "error", outcome.terminal.content
    return outcome.terminal.content


def loss_call(loss: str, loss_config: dict, sampler: str = "nearest-positive", config=None):
    gen = torch.Generator().manual_seed(0)
    return {
        "loss": loss,
        "loss_config": loss_config,
        "sampler": sampler,
        "config": config or {},
        "embeddings": torch.randn(12, 4, generator=gen),
        "labels": torch.arange(12) % 3,
    }


@pytest.mark.parametrize(
    ("loss", "loss_config", "sampler", "config", "train_field", "loss_field"),
    [
        ("triplet", {"bogus": 1}, "nearest-positive", {}, LOSS_CONFIG, "params.loss_config"),
        ("triplet", {"margin": "x"}, "nearest-positive", {}, LOSS_CONFIG, "params.loss_config"),
        ("tripplet", {}, "nearest-positive", {}, "params.loss.name", "params.loss"),
        (
            "triplet", {}, "semihard", {"negatives": "all"},
            "params.sampler.config", "params.config",
        ),
        ("torch:MSELoss", {}, "nearest-positive", {}, "params.loss.name", "params.loss"),
    ],
)
def test_the_same_bad_loss_config_is_invalid_params_in_train_and_loss(
    client: Client,
    loss: str,
    loss_config: dict,
    sampler: str,
    config: dict,
    train_field: str,
    loss_field: str,
) -> None:
    cfg = {**TRAIN, "loss": {"name": loss, "config": loss_config}}
    cfg["sampler"] = {"name": sampler, "config": config}
    from_train = error_of(client, "train", cfg)
    from_loss = error_of(client, "loss", loss_call(loss, loss_config, sampler, config))
    for err, field in ((from_train, train_field), (from_loss, loss_field)):
        assert err["code"] == "invalid_params", err
        assert err["ename"] == "InvalidParams"
        assert err["evalue"].startswith(f"{field}:"), err["evalue"]


@pytest.mark.parametrize(
    ("over", "fragment"),
    [
        ({"batch": {"classes": 5, "per_class": 4}}, "batch.classes = 5"),
        ({"model": {"kind": "mlp", "hidden": [-5]}}, "params.model.mlp.hidden[0]"),
        ({"model": {"kind": "convnet"}}, "model.in_channels, model.image_size"),
        (
            {"model": {"kind": "mlp", "hidden": [65536, 65536]}},
            "model.hidden and model.embedding_dim",
        ),
        ({"data": {**TRAIN["data"], "folds": 5}}, "data.folds = 5"),
        ({"resume_from": "/nonexistent/step-1.pt"}, "checkpoint not found"),
        ({"data": {"kind": "synthetic", "dim": -3}}, "params.data.synthetic.dim"),
    ],
)
def test_config_mistakes_in_train_are_invalid_params(
    client: Client, over: dict, fragment: str
) -> None:
    err = error_of(client, "train", {**TRAIN, **over})
    # ename too: the TypeScript client derives its error code from it
    assert err["code"] == "invalid_params" and err["ename"] == "InvalidParams", err
    assert fragment in err["evalue"], err["evalue"]


def test_select_on_typo_is_refused_before_training(client: Client) -> None:
    cfg = {
        **TRAIN,
        "data": {**TRAIN["data"], "folds": 3},
        "select_best": True,
        "select_on": "coarse.recall@4",
    }
    err = error_of(client, "train", cfg)
    assert err["code"] == "invalid_params"
    assert "coarse.recall@1" in err["evalue"]  # lists what is measured


def test_resume_from_a_file_that_is_no_checkpoint_names_the_field(
    client: Client, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    err = error_of(client, "train", {**TRAIN, "resume_from": str(junk)})
    assert err["code"] == "invalid_params" and err["ename"] == "InvalidParams"
    assert err["evalue"].startswith("resume_from: cannot read checkpoint")
    assert str(junk) in err["evalue"]


def test_a_sampler_with_fixed_negatives_runs_with_its_defaults(client: Client) -> None:
    # The filled-in defaults (negatives="all") are not passed on as if the caller said so.
    call = loss_call("triplet", {}, "semihard")
    mined = client.call("mine", {k: call[k] for k in ("sampler", "embeddings", "labels")})
    assert len(mined["indices"]["anchors"]) == 12 * 3  # every positive, one negative each
    value = client.call("loss", loss_call("triplet", {}, "semihard"))["value"]
    assert value >= 0
    cfg = {**TRAIN, "sampler": {"name": "semihard", "config": {"seed": 3}}}
    assert client.call("train", cfg, timeout=120)["steps"] == 2
