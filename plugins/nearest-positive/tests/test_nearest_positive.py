import pytest
import torch
from torch import nn

from nearest_positive import NearestPositive, create_loss, list_losses, select

pml = pytest.importorskip("pytorch_metric_learning")
from pytorch_metric_learning import losses  # noqa: E402


def clustered(n_classes=4, k=6, d=8, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    e = torch.randn(n_classes * k, d, generator=g)
    y = torch.arange(n_classes).repeat_interleave(k)
    return e.to(device), y.to(device)


def test_gradient_flows_only_through_selected_tuples(device):
    e, y = clustered(device=device)
    y = y.clone()
    y[-1] = 99  # a singleton: no positive, and the hardest negative for nobody
    e.requires_grad_(True)
    w = NearestPositive(create_loss("triplet", average_nonzero=False), negatives="hardest")
    w(e, y).backward()
    res = select(e.detach(), y)
    a, p, n = w.miner(e.detach(), y, e.detach(), y, ids=torch.arange(len(y), device=device),
                      ref_ids=torch.arange(len(y), device=device))
    used = torch.zeros(len(y), dtype=torch.bool, device=device)
    used[a] = used[p] = used[n] = True
    assert torch.equal(a, res.anchors) and torch.equal(p, res.positives)
    nonzero = e.grad.abs().sum(1) > 0
    assert not (nonzero & ~used).any()
    assert nonzero[a].any()


@pytest.mark.parametrize("make", [
    lambda: losses.TripletMarginLoss(), lambda: losses.ContrastiveLoss(),
    lambda: losses.MultiSimilarityLoss(), lambda: losses.MarginLoss(),
    lambda: nn.TripletMarginLoss(), lambda: nn.TripletMarginWithDistanceLoss(),
    lambda: create_loss("triplet"), lambda: create_loss("margin"),
    lambda: create_loss("contrastive"), lambda: create_loss("multi-similarity"),
], ids=["pml-triplet", "pml-contrastive", "pml-ms", "pml-margin", "torch-triplet",
        "torch-triplet-dist", "triplet", "margin", "contrastive", "ms"])
def test_supported_losses_train(make, device):
    e, y = clustered(device=device)
    e.requires_grad_(True)
    w = NearestPositive(make().to(device), memory_size=48)
    for _ in range(2):
        value = w(e, y, ids=torch.arange(len(y), device=device))
        value.backward()
    assert torch.isfinite(value) and e.grad is not None
    d = w.last_diagnostics
    assert set(d) == {"anchors", "anchors_without_positive", "tuples", "mean_ap_distance",
                      "mean_an_distance"}
    assert d["anchors"] == len(y) and d["tuples"] > 0
    assert all(isinstance(v, (int, float)) for v in d.values())


@pytest.mark.parametrize("loss", [
    lambda: losses.ProxyAnchorLoss(4, 8), lambda: losses.ArcFaceLoss(4, 8),
    lambda: losses.FastAPLoss(), lambda: losses.NCALoss(), lambda: losses.InstanceLoss(),
    lambda: losses.NPairsLoss(), lambda: nn.MSELoss(),
], ids=["proxy-anchor", "arcface", "fastap", "nca", "instance", "npairs", "mse"])
def test_refused_losses_name_the_loss(loss):
    inst = loss()
    with pytest.raises(ValueError, match=type(inst).__name__):
        NearestPositive(inst)


def test_memory_excludes_own_past_copies_by_id(device):
    e, y = clustered(device=device)
    ids = torch.arange(len(y), device=device)
    w = NearestPositive(losses.TripletMarginLoss(), memory_size=100)
    w(e, y, ids=ids)
    w(e, y, ids=ids)  # the same samples again: their memory copies are themselves
    assert w.last_diagnostics["mean_ap_distance"] > 0.1
    w2 = NearestPositive(losses.TripletMarginLoss(), memory_size=100)
    w2(e, y)
    w2(e, y)  # fresh ids: the stored rows are other samples, at distance 0
    assert w2.last_diagnostics["mean_ap_distance"] < 1e-3


def test_drop_in_pml_training_loop_separates_classes(device):
    """An unchanged PML loop: only the loss line changes."""
    torch.manual_seed(0)
    n_classes, modes, per_mode, d_in = 4, 2, 6, 16
    centres = torch.randn(n_classes * modes, d_in)
    x = centres.repeat_interleave(per_mode, 0) + 0.4 * torch.randn(
        n_classes * modes * per_mode, d_in
    )
    y = (torch.arange(n_classes * modes) // modes).repeat_interleave(per_mode)
    x, y = x.to(device), y.to(device)
    model = nn.Sequential(nn.Linear(d_in, 32), nn.ReLU(), nn.Linear(32, 8)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_func = NearestPositive(losses.TripletMarginLoss(margin=0.2))
    history = []
    for _ in range(60):
        opt.zero_grad()
        loss = loss_func(model(x), y)
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert sum(history[-5:]) < 0.5 * sum(history[:5])
    with torch.no_grad():
        z = nn.functional.normalize(model(x), dim=1)
        dist = torch.cdist(z, z)
        dist.fill_diagonal_(float("inf"))
        nn_label = y[dist.argmin(1)]
    assert (nn_label == y).float().mean() > 0.95


def test_supported_losses_lists_pml_and_torch():
    names = NearestPositive.supported_losses()
    assert "pml:TripletMarginLoss" in names and "torch:TripletMarginLoss" in names
    assert names == list_losses()  # one list: the plugin's, as hello sends it


def test_distributed_without_process_group_is_an_error():
    w = NearestPositive(losses.TripletMarginLoss(), distributed=True)
    e, y = clustered()
    with pytest.raises(RuntimeError, match="init_process_group"):
        w(e, y)


def test_warns_when_every_class_has_two_samples():
    e = torch.randn(8, 4)
    y = torch.arange(4).repeat_interleave(2)
    with pytest.warns(UserWarning, match="at most 2 samples"):
        NearestPositive(losses.TripletMarginLoss())(e, y)
