"""SamplerConfig is the one declaration of the sampler options: the plugin's JSON config,
the wrapper's and the miner's keyword arguments and the core miner all take its fields."""

import dataclasses

import pytest
import torch

from nearest_positive import NearestPositive, SamplerConfig, create_loss
from nearest_positive.mining import Miner
from nearest_positive.plugin import plugin

WRAPPER_ONLY = {"memory_size", "distributed", "scale_by_world_size", "warn_small_k"}


def test_every_option_has_a_default_a_description_and_reaches_the_wrapper():
    values = {"negatives": "hardest", "distance": "cosine", "normalize": False,
              "tile_size": 3, "on_missing": "error", "seed": 5, "output": "pairs",
              "memory_size": 8, "distributed": False, "scale_by_world_size": True,
              "warn_small_k": False}
    assert set(values) == set(SamplerConfig.field_names())  # a new option needs a case here
    w = NearestPositive(create_loss("contrastive"), **values)
    assert dataclasses.asdict(w.config) == values
    assert w.miner.config.output == "pairs" and w.memory.size == 8
    for name in SamplerConfig.field_names():
        assert f"{name}: " in NearestPositive.__doc__, name  # documented from the metadata


def test_unknown_keyword_names_it_and_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown sampler option\(s\) 'tile'; known options: "
                       r"negatives, distance, .*warn_small_k"):
        NearestPositive(create_loss("triplet"), tile=4)


def test_miner_takes_the_mining_options_only():
    assert set(SamplerConfig.field_names(wrapper=False)) == (
        set(SamplerConfig.field_names()) - WRAPPER_ONLY
    )
    assert set(SamplerConfig().to_dict(wrapper=False)) == set(
        SamplerConfig.field_names(wrapper=False)
    )


def test_choices_are_checked_where_the_options_are_built():
    for bad, match in (({"negatives": "easy"}, "negatives must be one of"),
                       ({"distance": "manhattan"}, "distance must be one of"),
                       ({"output": "quads"}, "output must be one of"),
                       ({"on_missing": "skip"}, "on_missing must be one of")):
        with pytest.raises(ValueError, match=match):
            SamplerConfig.from_dict(bad)
        with pytest.raises(ValueError, match=match):
            NearestPositive(create_loss("triplet"), **bad)
    with pytest.raises(ValueError, match="positives must be one of"):
        Miner(SamplerConfig(), positives="easy")
    with pytest.raises(ValueError, match="distance-weighted.*normalize"):
        Miner(SamplerConfig(negatives="distance-weighted", normalize=False))


def test_plugin_and_wrapper_give_the_same_tuples():
    g = torch.Generator().manual_seed(0)
    e, y = torch.randn(24, 5, generator=g), torch.arange(6).repeat_interleave(4)
    config = {"negatives": "semihard", "distance": "squared_euclidean", "seed": 1}
    a = plugin.wrap(create_loss("triplet"), config).miner(e, y)
    b = NearestPositive(create_loss("triplet"), "nearest", **config).miner(e, y)
    c = plugin.miner(config)(e, y)
    for x, z, m in zip(a, b, c, strict=True):
        assert torch.equal(x, z) and torch.equal(x, m)
