"""Contract suite run over every discovered `nearpos.plugins` entry point."""

import dataclasses
from importlib.metadata import entry_points

import pytest
import torch

import nearest_positive
from nearest_positive import SamplerConfig, create_loss, list_losses
from nearest_positive.plugin import PLUGINS

EPS = sorted(entry_points(group="nearpos.plugins"), key=lambda e: e.name)


def test_all_samplers_are_registered():
    assert {e.name for e in EPS} >= {p.name for p in PLUGINS}
    assert len(PLUGINS) == 6


#: A valid config per sampler for the contract below (the pml-miner sampler has its own options).
CONTRACT_CONFIG = {"pml-miner": {"miner": "TripletMarginMiner", "miner_config": {"margin": 10.0}}}


@pytest.mark.parametrize("ep", EPS, ids=[e.name for e in EPS])
def test_entry_point_contract(ep):
    obj = ep.load()
    assert obj.name == ep.name
    assert isinstance(obj.version, str) and obj.description
    assert dataclasses.is_dataclass(obj.config_class)
    for f in dataclasses.fields(obj.config_class):
        assert f.metadata.get("description"), f.name
        assert f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    g = torch.Generator().manual_seed(0)
    e = torch.randn(16, 6, generator=g)
    y = torch.arange(4).repeat_interleave(4)
    config = CONTRACT_CONFIG.get(ep.name, {"seed": 1})
    miner = obj.miner(config)
    a, p, n = miner(e, y)
    assert len(a) == len(p) == len(n) > 0
    assert (y[a] == y[p]).all() and (y[a] != y[n]).all() and (a != p).all()
    assert miner.last_diagnostics["tuples"] == len(a)
    wrapped = obj.wrap(create_loss("triplet"), config)
    x = e.clone().requires_grad_(True)
    wrapped(x, y).backward()
    assert x.grad is not None and wrapped.last_diagnostics["anchors"] == 16
    with pytest.raises(ValueError, match="unknown sampler option.*'bogus'.*known options"):
        obj.miner({"bogus": 1})
    with pytest.raises(ValueError, match="unknown sampler option"):
        obj.wrap(create_loss("triplet"), {"bogus": 1})


def test_semihard_sampler_uses_semihard_negatives():
    from nearest_positive.plugin import semihard

    e = torch.randn(16, 6)
    y = torch.arange(4).repeat_interleave(4)
    a, p, n = semihard.miner({})(e, y)
    assert len(a) == 16 * 3  # one negative per positive pair
    with pytest.raises(ValueError, match="always uses negatives='semihard'"):
        semihard.miner({"negatives": "hardest"})


def test_config_validation():
    with pytest.raises(ValueError, match="negatives must be one of"):
        nearest_positive.plugin.plugin.miner({"negatives": "easy"})
    with pytest.raises(TypeError, match="tile_size"):
        SamplerConfig.from_dict({"tile_size": "big"})
    with pytest.raises(ValueError, match="memory_size"):
        SamplerConfig.from_dict({"memory_size": -1})


def test_loss_factory():
    names = list_losses()
    assert {"triplet", "margin", "contrastive", "multi-similarity",
            "torch:TripletMarginLoss", "pml:TripletMarginLoss"} <= set(names)
    assert create_loss("margin", beta=1.0).beta.item() == 1.0
    with pytest.raises(ValueError, match="unknown loss 'tripplet'.*triplet"):
        create_loss("tripplet")
    with pytest.raises(ValueError, match="ProxyAnchorLoss"):
        create_loss("pml:ProxyAnchorLoss", num_classes=3, embedding_size=4)
    with pytest.raises(ValueError, match="has no Nope"):
        create_loss("pml:Nope")


def test_own_triplet_loss_equals_pml():
    losses = pytest.importorskip("pytorch_metric_learning.losses")
    e = torch.randn(20, 5)
    y = torch.arange(5).repeat_interleave(4)
    mine = nearest_positive.plugin.plugin.miner({})(e, y)
    ours = create_loss("triplet", margin=0.1)(e, y, mine)
    theirs = losses.TripletMarginLoss(margin=0.1)(e, y, mine)
    torch.testing.assert_close(ours, theirs)


def test_package_imports_without_pml():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['pytorch_metric_learning'] = None\n"
        "import torch, nearest_positive as n\n"
        "from nearest_positive.plugin import plugin\n"
        "l = n.NearestPositive(n.create_loss('triplet'))\n"
        "e = torch.randn(8, 3); y = torch.arange(2).repeat_interleave(4)\n"
        "assert l(e, y).item() >= 0 and len(plugin.miner({})(e, y)[0])\n"
        "try:\n    n.NearestPositiveMiner\nexcept ImportError as x:\n    print('ok', x)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok") and "pytorch-metric-learning" in out.stdout
