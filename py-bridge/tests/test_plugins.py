"""Entry-point discovery against a real plugin package installed into a temp dir."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.nn import Module

from nearpos_runtime.client import Client
from nearpos_runtime.errors import InvalidParams
from nearpos_runtime.plugins import LoadedPlugin, LossFields, PluginIndex, discover


@pytest.fixture
def index(plugin_dir: Path) -> Iterator[PluginIndex]:
    sys.path.insert(0, str(plugin_dir))
    try:
        yield discover()
    finally:
        sys.path.remove(str(plugin_dir))
        for name in [m for m in sys.modules if m.startswith("nptestplug")]:
            del sys.modules[name]


def test_discovers_and_reports_broken(index: PluginIndex) -> None:
    plugin = index.get("np-test")
    assert plugin.describe()["config_schema"]["properties"]["normalize"]["default"] is True
    assert {"name": "np-broken", "error": "ImportError: broken on purpose"} in index.errors
    with pytest.raises(InvalidParams, match=r"unknown sampler 'zz'; known: .*np-test"):
        index.get("zz")


def test_config_validation(index: PluginIndex) -> None:
    plugin = index.get("np-test")
    assert plugin.validate_config({}) == {"positives": "all", "normalize": True}
    assert plugin.validate_config({"positives": "nearest"})["positives"] == "nearest"
    with pytest.raises(InvalidParams, match="unknown option.*typo.*allowed: positives, normalize"):
        plugin.validate_config({"typo": 1})
    with pytest.raises(InvalidParams, match=r"params.config.positives: Input should be 'all'"):
        plugin.validate_config({"positives": 3})


def test_loss_factory_is_found_through_the_package(index: PluginIndex) -> None:
    plugin = index.get("np-test")
    assert plugin.list_losses() == [
        "pml:TripletMarginLoss", "pml:ContrastiveLoss", "np-test:wide-triplet"
    ]
    loss = plugin.create_loss_fn()("pml:ContrastiveLoss", pos_margin=0.1)
    assert type(loss).__name__ == "ContrastiveLoss"


def test_describe_lists_losses_with_the_pml_pattern(index: PluginIndex) -> None:
    described = index.get("np-test").describe()
    assert described["losses"] == [
        "pml:TripletMarginLoss", "pml:ContrastiveLoss", "np-test:wide-triplet", "pml:*"
    ]


def test_hello_lists_each_plugins_losses(client: Client) -> None:
    plugins = {p["name"]: p for p in client.hello()["plugins"]}
    from nearest_positive.losses import list_losses

    assert plugins["np-test"]["losses"][-1] == "pml:*"
    np_losses = plugins["nearest-positive"]["losses"]
    assert np_losses[:-1] == list_losses() and np_losses[-1] == "pml:*"
    assert {"triplet", "margin", "contrastive", "multi-similarity"} <= set(np_losses)


TRAIN = {
    "data": {"kind": "synthetic", "classes": 3, "dim": 8, "per_mode": 10},
    "model": {"kind": "mlp", "hidden": [16], "embedding_dim": 8},
    "batch": {"classes": 3, "per_class": 4},
    "steps": 3,
    "eval": {"ks": [1], "nmi": False},
    "device": "cpu",
}
OWN_LOSS = "np-test:wide-triplet"


def outcome_of(client: Client, method: str, params: dict[str, Any]) -> Any:
    outcome = client.wait(client.submit(method, params), timeout=120)
    assert outcome.terminal is not None
    return outcome.terminal


def test_a_third_party_loss_works_in_train_and_loss(client: Client) -> None:
    sampler = {"name": "np-test", "config": {"positives": "nearest"}}
    loss = {"name": OWN_LOSS, "config": {"margin": 0.5}}
    trained = outcome_of(client, "train", {**TRAIN, "sampler": sampler, "loss": loss})
    assert trained.msg_type == "result", trained.content
    result = trained.content["value"]
    assert result["steps"] == 3 and len(result["losses"]) == 3
    gen = torch.Generator().manual_seed(0)
    params = {
        "loss": OWN_LOSS, "loss_config": {"margin": 0.5}, "sampler": "np-test",
        "config": {"positives": "nearest"}, "labels": torch.arange(12) % 3,
        "embeddings": torch.randn(12, 4, generator=gen),
    }
    value = outcome_of(client, "loss", params)
    assert value.msg_type == "result" and value.content["value"]["value"] > 0, value.content
    # the name is the np-test plugin's: another sampler refuses it, in both methods alike
    other = {**TRAIN, "sampler": {"name": "nearest-positive"}, "loss": loss}
    for method, p, field in (
        ("train", other, "params.loss.name"),
        ("loss", {**params, "sampler": "nearest-positive", "config": {}}, "params.loss"),
    ):
        err = outcome_of(client, method, p).content
        assert err["code"] == "invalid_params", err
        assert err["evalue"].startswith(f"{field}: unknown loss '{OWN_LOSS}'"), err["evalue"]


def pml_loss_classes() -> list[str]:
    import pytorch_metric_learning.losses as pml_losses

    return sorted(
        n for n in dir(pml_losses)
        if isinstance(getattr(pml_losses, n), type) and issubclass(getattr(pml_losses, n), Module)
    )


def test_hello_lists_exactly_what_each_factory_accepts(client: Client, index: PluginIndex) -> None:
    hello = {p["name"]: p.get("losses") for p in client.hello()["plugins"]}
    assert hello == {name: plugin.loss_names() for name, plugin in index.plugins.items()}
    for name, names in hello.items():
        assert names, name
        plugin = index.get(name)

        def accepts(loss: str, plugin: LoadedPlugin = plugin) -> bool:
            try:
                plugin.build_loss(loss, {}, {}, FIELDS)
            except InvalidParams as exc:
                assert str(exc).startswith(f"{FIELDS.name}: "), exc
                return False
            return True

        listed = [n for n in names if not n.endswith("*")]
        assert [n for n in listed if not accepts(n)] == [], name
        # a pattern only lets the factory decide: it accepts no more than the list
        candidates = [f"pml:{c}" for c in pml_loss_classes()]
        candidates += ["torch:TripletMarginLoss", "torch:MSELoss", "tripplet", "np-test:other"]
        assert [n for n in candidates if n not in listed and accepts(n)] == [], name


FIELDS = LossFields("params.loss.name", "params.loss.config", "params.sampler.config")
