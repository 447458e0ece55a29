"""Every size in the schema has a bound: huge or negative sizes are invalid_params naming the
field, at once, instead of a memory error (or a raw RuntimeError) later."""

from __future__ import annotations

import time

import pytest

import nearpos_runtime.methods  # noqa: F401  (registers the methods)
from nearpos_runtime.errors import InvalidParams
from nearpos_runtime.registry import get_method
from nearpos_runtime.training.config import MlpModel, TrainConfig
from nearpos_runtime.training.models import MAX_PARAMETERS, ModelError, build_model

BASE = {"data": {"kind": "synthetic"}, "model": {"kind": "mlp"}}


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"batch": {"per_class": 1e9}}, "params.batch.per_class"),
        ({"batch": {"classes": 1e9}}, "params.batch.classes"),
        ({"batch": {"classes": 4096, "per_class": 4096}}, "classes x per_class"),
        ({"data": {"kind": "synthetic", "per_mode": 1e9}}, "params.data.synthetic.per_mode"),
        ({"data": {"kind": "synthetic", "dim": -3}}, "params.data.synthetic.dim"),
        ({"data": {"kind": "synthetic", "classes": 1000, "dim": 4096}}, "1 GiB of float32"),
        ({"data": {"kind": "synthetic", "noise": float("inf")}}, "params.data.synthetic.noise"),
        ({"data": {"kind": "mnist", "per_digit": 1e12}}, "params.data.mnist.per_digit"),
        ({"data": {"kind": "cub", "root": "/x", "image_size": 1e6}}, "image_size"),
        ({"data": {"kind": "cub", "root": "/x", "workers": 1000}}, "workers"),
        ({"data": {"kind": "cub", "root": "/x", "workers": -1}}, "workers"),
        ({"data": {"kind": "cub", "root": "/x", "prefetch": 0}}, "prefetch"),
        ({"model": {"kind": "mlp", "hidden": [1e12]}}, "params.model.mlp.hidden[0]"),
        ({"model": {"kind": "mlp", "hidden": [-5]}}, "params.model.mlp.hidden[0]"),
        ({"model": {"kind": "mlp", "hidden": [8] * 17}}, "params.model.mlp.hidden"),
        ({"model": {"kind": "mlp", "embedding_dim": 1e9}}, "params.model.mlp.embedding_dim"),
        ({"model": {"kind": "convnet", "channels": [1e6]}}, "params.model.convnet.channels[0]"),
        ({"model": {"kind": "convnet", "channels": []}}, "params.model.convnet.channels"),
        ({"eval": {"ks": [1e9]}}, "params.eval.ks[0]"),
        ({"eval": {"ks": list(range(1, 40))}}, "params.eval.ks"),
        ({"eval": {"chunk_size": 1e9}}, "params.eval.chunk_size"),
        ({"eval": {"batch_size": 1e9}}, "params.eval.batch_size"),
        ({"steps": 1e12}, "params.steps"),
        ({"eval_every": 1e12}, "params.eval_every"),
        ({"seed": 2**64}, "params.seed"),
        ({"seed": -1}, "params.seed"),
        ({"threads": 1e6}, "params.threads"),
        ({"schedule": {"kind": "cosine", "warmup_steps": 1e12}}, "warmup_steps"),
        ({"optimizer": {"lr": float("inf")}}, "params.optimizer.lr"),
        ({"memory_budget": 10}, "params.memory_budget"),
    ],
)
def test_train_sizes_are_bounded(over: dict, field: str) -> None:
    t0 = time.perf_counter()
    with pytest.raises(InvalidParams) as info:
        get_method("train").validate({**BASE, **over})
    assert field in str(info.value)
    assert info.value.code == "invalid_params"
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize(
    ("method", "params", "field"),
    [
        ("embed", {"model": "m", "data": {"kind": "synthetic"}, "batch_size": 1e9}, "batch_size"),
        ("evaluate", {"model": "m", "data": {"kind": "synthetic"}, "ks": [1e9]}, "params.ks[0]"),
        ("evaluate", {"model": "m", "data": {"kind": "synthetic"}, "chunk_size": 1e9}, "chunk"),
    ],
)
def test_other_methods_sizes_are_bounded(method: str, params: dict, field: str) -> None:
    with pytest.raises(InvalidParams) as info:
        get_method(method).validate(params)
    assert field in str(info.value)


def test_defaults_and_documented_examples_stay_valid() -> None:
    TrainConfig.model_validate(BASE)
    TrainConfig.model_validate(
        {
            "data": {"kind": "mnist", "per_digit": 300},
            "model": {"kind": "mlp", "hidden": [128], "embedding_dim": 32},
            "batch": {"classes": 5, "per_class": 6},
            "eval": {"ks": [1, 10, 100, 1000]},
            "seed": 2**53 - 1,
        }
    )


def test_model_size_is_checked_before_anything_is_allocated() -> None:
    spec = MlpModel(kind="mlp", hidden=[65536, 65536], embedding_dim=64)
    t0 = time.perf_counter()
    with pytest.raises(ModelError, match=r"model.hidden and model.embedding_dim: .* parameters"):
        build_model(spec, 784)
    assert time.perf_counter() - t0 < 0.5
    assert ModelError.code == "invalid_params"
    small = MlpModel(kind="mlp", hidden=[256], embedding_dim=64)
    n = sum(p.numel() for p in build_model(small, 784).parameters())
    assert n == (784 + 1) * 256 + (256 + 1) * 64 < MAX_PARAMETERS


def test_parameter_count_matches_the_built_networks() -> None:
    from nearpos_runtime.training.config import ConvNetModel
    from nearpos_runtime.training.models import parameter_count

    for spec, inputs in (
        (MlpModel(kind="mlp", hidden=[64, 32], embedding_dim=16, dropout=0.2), 20),
        (ConvNetModel(kind="convnet", channels=[8, 16], embedding_dim=12), 784),
    ):
        built = sum(p.numel() for p in build_model(spec, inputs).parameters())
        assert parameter_count(spec, inputs) == built
