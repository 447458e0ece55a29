"""The pml-miner sampler: a PML loss with PML's own miner, exactly as PML computes it."""

import pytest
import torch
from pytorch_metric_learning import losses, miners
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

from nearest_positive import create_loss
from nearest_positive.plugin import pml_miner
from nearest_positive.pml_baseline import default_diagnostics, tuple_diagnostics


def batch(seed: int = 0, classes: int = 5, per_class: int = 6, dim: int = 16):
    g = torch.Generator().manual_seed(seed)
    e = torch.randn(classes * per_class, dim, generator=g)
    y = torch.arange(classes).repeat_interleave(per_class)
    return e, y


@pytest.mark.parametrize(
    "loss_name,loss_kw,miner,miner_kw",
    [
        ("TripletMarginLoss", {"margin": 0.2}, "TripletMarginMiner",
         {"margin": 0.2, "type_of_triplets": "semihard"}),
        ("MarginLoss", {"learn_beta": True}, "DistanceWeightedMiner",
         {"cutoff": 0.5, "nonzero_loss_cutoff": 1.4}),
        ("MultiSimilarityLoss", {}, "MultiSimilarityMiner", {"epsilon": 0.1}),
        ("ContrastiveLoss", {}, None, {}),
    ],
)
def test_value_and_gradient_equal_pml_called_directly(loss_name, loss_kw, miner, miner_kw):
    e, y = batch()
    e = torch.nn.functional.normalize(e, dim=1)  # the distance-weighted miner needs unit rows
    wrapped = pml_miner.wrap(
        create_loss(f"pml:{loss_name}", **loss_kw), {"miner": miner, "miner_config": miner_kw}
    )
    x1 = e.clone().requires_grad_(True)
    torch.manual_seed(3)  # the distance-weighted miner samples with torch's generator
    v1 = wrapped(x1, y)
    v1.backward()

    ref_loss = getattr(losses, loss_name)(**loss_kw)
    x2 = e.clone().requires_grad_(True)
    torch.manual_seed(3)
    if miner is None:
        v2 = ref_loss(x2, y)
    else:
        v2 = ref_loss(x2, y, getattr(miners, miner)(**miner_kw)(x2, y))
    v2.backward()
    assert float(v1.detach()) > 0
    torch.testing.assert_close(v1, v2)
    torch.testing.assert_close(x1.grad, x2.grad)
    assert wrapped.last_diagnostics["tuples"] > 0


def test_learnable_beta_is_a_parameter_of_the_wrapped_loss():
    wrapped = pml_miner.wrap(create_loss("pml:MarginLoss", learn_beta=True), {})
    params = list(wrapped.parameters())
    assert len(params) == 1 and params[0].requires_grad and float(params[0]) == pytest.approx(1.2)


@pytest.mark.parametrize("form", ["pairs", "triplets"])
def test_default_tuples_are_counted_like_pml_lists_them(form):
    e, y = batch(1, classes=4, per_class=5)
    y[0] = 9  # a class of one: an anchor without a positive
    tup = lmu.get_all_pairs_indices(y) if form == "pairs" else lmu.get_all_triplets_indices(y)
    counted = default_diagnostics(e, y, form)
    listed = tuple_diagnostics(e, e, tup)
    for key in ("tuples", "anchors"):
        assert counted[key] == listed[key], key
    for key in ("mean_ap_distance", "mean_an_distance"):
        assert counted[key] == pytest.approx(listed[key], rel=1e-5), key
    assert counted["anchors_without_positive"] == 1


def test_miner_sets_diagnostics_of_the_tuples_it_returns():
    e, y = batch(2)
    m = pml_miner.miner({"miner": "TripletMarginMiner", "miner_config": {"margin": 10.0}})
    a, p, n = m(e, y)
    assert len(a) == 30 * 5 * 24  # margin 10 on the unit sphere: every triplet
    assert m.last_diagnostics["tuples"] == len(a)
    assert m.last_diagnostics["anchors"] == 30


def test_bad_configs_name_what_was_wrong():
    loss = create_loss("pml:TripletMarginLoss")
    with pytest.raises(ValueError, match="unknown pytorch-metric-learning miner 'Nope'.*"
                       "TripletMarginMiner"):
        pml_miner.wrap(loss, {"miner": "Nope"})
    with pytest.raises(ValueError, match="miner_config for TripletMarginMiner.*bogus"):
        pml_miner.wrap(loss, {"miner": "TripletMarginMiner", "miner_config": {"bogus": 1}})
    with pytest.raises(ValueError, match="unknown sampler option.*'negatives'.*known options"):
        pml_miner.wrap(loss, {"negatives": "all"})
    with pytest.raises(ValueError, match="miner_config needs option miner"):
        pml_miner.miner({"miner_config": {"margin": 0.1}})
    with pytest.raises(ValueError, match="miner_config needs option miner"):
        pml_miner.wrap(loss, {"miner_config": {"margin": 0.1}})
    with pytest.raises(ValueError, match="TripletMarginLoss takes .*not indices_tuple"):
        pml_miner.wrap(torch.nn.TripletMarginLoss(), {})


def test_without_a_miner_the_miner_returns_every_triplet():
    e, y = batch(4, classes=3, per_class=4)
    a, p, n = pml_miner.miner({})(e, y)
    expected = lmu.get_all_triplets_indices(y)
    for got, want in zip((a, p, n), expected, strict=True):
        assert torch.equal(got, want)


def test_lists_the_losses_it_drives():
    from nearest_positive import create_loss
    from nearest_positive.plugin import pml_miner

    names = pml_miner.list_losses()
    assert "triplet" in names and not [n for n in names if n.startswith("torch:")]
    with pytest.raises(ValueError, match="indices_tuple"):
        pml_miner.wrap(create_loss("torch:TripletMarginLoss"), {})
