"""Entry-point discovery against a real plugin package installed into a temp dir."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nearpos_runtime.client import Client
from nearpos_runtime.errors import InvalidParams
from nearpos_runtime.plugins import PluginIndex, discover


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
    assert plugin.list_losses() == ["pml:TripletMarginLoss", "pml:ContrastiveLoss"]
    loss = plugin.create_loss_fn()("pml:ContrastiveLoss", pos_margin=0.1)
    assert type(loss).__name__ == "ContrastiveLoss"


def test_describe_lists_losses_with_the_pml_pattern(index: PluginIndex) -> None:
    described = index.get("np-test").describe()
    assert described["losses"] == ["pml:TripletMarginLoss", "pml:ContrastiveLoss", "pml:*"]


def test_hello_lists_each_plugins_losses(client: Client) -> None:
    plugins = {p["name"]: p for p in client.hello()["plugins"]}
    from nearest_positive.losses import list_losses

    assert plugins["np-test"]["losses"][-1] == "pml:*"
    np_losses = plugins["nearest-positive"]["losses"]
    assert np_losses[:-1] == list_losses() and np_losses[-1] == "pml:*"
    assert {"triplet", "margin", "contrastive", "multi-similarity"} <= set(np_losses)
