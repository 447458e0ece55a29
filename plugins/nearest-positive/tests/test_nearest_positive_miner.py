import pytest
import torch

pml = pytest.importorskip("pytorch_metric_learning")
from pytorch_metric_learning import losses, miners  # noqa: E402
from pytorch_metric_learning.distances import CosineSimilarity, LpDistance  # noqa: E402

from nearest_positive import NearestPositiveMiner  # noqa: E402


def batch(device, n_classes=6, k=4, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    e = torch.randn(n_classes * k, d, generator=g).to(device)
    y = torch.arange(n_classes).repeat_interleave(k).to(device)
    return e, y


@pytest.mark.parametrize("distance", [LpDistance(), CosineSimilarity()], ids=["lp", "cos"])
@pytest.mark.parametrize("neg", ["all", "hard"])
def test_parity_with_pml_easy_positive_miner_in_batch(distance, neg, device):
    e, y = batch(device)
    ref = miners.BatchEasyHardMiner(pos_strategy="easy", neg_strategy=neg, distance=distance)
    a1, p, a2, n = ref(e, y)
    ours = NearestPositiveMiner(
        distance=distance, output="pairs", negatives="all" if neg == "all" else "hardest"
    )
    b1, q, b2, m = ours(e, y)
    order = torch.argsort(a1)
    assert torch.equal(a1[order], b1) and torch.equal(p[order], q)
    key = lambda a, b: sorted(zip(a.tolist(), b.tolist(), strict=True))  # noqa: E731
    assert key(a2, n) == key(b2, m)


def run_xbm(miner, steps=3, device="cpu"):
    torch.manual_seed(0)
    xbm = losses.CrossBatchMemory(losses.TripletMarginLoss(), 16, memory_size=256, miner=miner)
    values, pos_pairs = [], []
    for step in range(steps):
        e, y = batch(device, seed=step)
        e.requires_grad_(True)
        values.append(xbm(e, y).item())
        pos_pairs.append(len(miner(e.detach(), y, e.detach().clone(), y)[0]))
    return values, pos_pairs


def test_cross_batch_memory_regression(device):
    """PML's easy-positive miner picks each anchor's own copy in the memory: loss 0.0."""
    pml_values, pml_pos = run_xbm(
        miners.BatchEasyHardMiner(pos_strategy="easy", neg_strategy="all"), device=device
    )
    ours = NearestPositiveMiner()
    values, pos = run_xbm(ours, device=device)
    assert pml_values == [0.0, 0.0, 0.0]
    assert all(v > 0 for v in values)
    assert all(c > 0 for c in pos)
    # every positive is a real other sample: never at distance 0
    assert ours.last_diagnostics["mean_ap_distance"] > 0.1
    assert ours.last_diagnostics["anchors"] == 24


def test_feeds_pml_triplet_and_contrastive_losses(device):
    e, y = batch(device)
    e.requires_grad_(True)
    cases = ((losses.TripletMarginLoss(), "triplets"), (losses.ContrastiveLoss(), "pairs"))
    for loss, out in cases:
        miner = NearestPositiveMiner(output=out)
        value = loss(e, y, miner(e, y))
        value.backward()
        assert value.item() > 0 and e.grad is not None
        assert miner.last_diagnostics["tuples"] > 0


def test_explicit_ids_with_reference(device):
    e, y = batch(device)
    ids = torch.arange(len(y), device=device)
    bank = torch.cat([e, e]) + 0.0
    bank_y = torch.cat([y, y])
    miner = NearestPositiveMiner()
    a, p, n = miner(e, y, bank, bank_y, ids=ids, ref_ids=torch.cat([ids, ids]))
    assert not (p % len(y) == a).any()


def test_unsupported_distance_is_refused():
    with pytest.raises(ValueError, match="distance"):
        NearestPositiveMiner(distance=LpDistance(p=1))


def test_pml_distance_maps_to_the_options():
    m = NearestPositiveMiner(distance=LpDistance(power=2, normalize_embeddings=False))
    assert (m.core.config.distance, m.core.config.normalize) == ("squared_euclidean", False)
    assert isinstance(m.distance, LpDistance)  # PML's own attribute keeps the object
    c = NearestPositiveMiner(distance=CosineSimilarity(), normalize=False)
    assert (c.core.config.distance, c.core.config.normalize) == ("cosine", True)


def test_pml_distance_in_the_wrapper_equals_the_name():
    from nearest_positive import NearestPositive

    e, y = batch("cpu")
    by_object = NearestPositive(losses.TripletMarginLoss(), distance=CosineSimilarity())
    by_name = NearestPositive(losses.TripletMarginLoss(), distance="cosine")
    assert by_object.config == by_name.config
    assert by_object(e, y).item() == by_name(e, y).item()


def test_miner_keywords():
    assert NearestPositiveMiner(collect_stats=True).collect_stats is True
    with pytest.raises(ValueError, match=r"'memory_size'; known options: positives, self_match, "
                       r"collect_stats, negatives"):
        NearestPositiveMiner(memory_size=10)
    with pytest.raises(TypeError):
        NearestPositiveMiner("semihard")  # options are keywords: no silent positional meaning
