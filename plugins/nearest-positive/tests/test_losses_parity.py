"""The package's own losses against their PML counterparts: same value, same gradients.

Each case runs both losses on the same float64 embeddings and the same indices tuple
(triplets, pairs, repeated tuples, None, a reference set), with PML's default reducers.
"""

import pytest
import torch

pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu  # noqa: E402

from nearest_positive import NearestPositiveMiner, create_loss  # noqa: E402
from nearest_positive.losses import base as loss_base  # noqa: E402

CASES = ["none", "nearest-triplets", "nearest-pairs", "semihard-all", "random-triplets",
         "random-pairs", "reference"]


@pytest.fixture(params=["gather", "matrix"])
def metric_path(request, monkeypatch):
    """Few pairs: two gathered rows per pair; many: one B x M matrix, then indexing."""
    limit = float("inf") if request.param == "gather" else 0.0
    monkeypatch.setattr(loss_base, "MATRIX_MIN_PAIRS_PER_ENTRY", limit)
    return request.param


def batch(seed: int, n_classes: int = 5, k: int = 4, d: int = 8):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n_classes).repeat_interleave(k)
    y = torch.cat([y, torch.tensor([n_classes])])  # a singleton: no positive
    e = torch.randn(len(y), d, generator=g, dtype=torch.float64)
    return e, y, g


def tuples(case: str, e, y, g, form: str):
    """(indices_tuple or None, ref_emb, ref_labels) for a test case."""
    if case == "none":
        return None, None, None
    if case == "reference":
        ref = torch.randn(12, e.shape[1], generator=g, dtype=e.dtype)
        ref_y = torch.randint(0, 6, (12,), generator=g)
        miner = NearestPositiveMiner(output=form, self_match="none")
        return miner(e, y, ref, ref_y), ref, ref_y
    if case.startswith("random"):  # PML-style tuples with repeats, not from our miner
        a1, p, a2, n = lmu.get_all_pairs_indices(y)
        i = torch.randint(0, len(a1), (40,), generator=g)
        j = torch.randint(0, len(a2), (60,), generator=g)
        pairs = (a1[i], p[i], a2[j], n[j])
        if form == "pairs" or case == "random-pairs":
            return pairs, None, None
        return lmu.convert_to_triplets(pairs, y), None, None
    if case == "semihard-all":
        return NearestPositiveMiner(positives="all", negatives="semihard", output=form)(e, y), \
            None, None
    out = "pairs" if case == "nearest-pairs" else form
    return NearestPositiveMiner(output=out)(e, y), None, None


def run(loss, e, y, tup, ref, ref_y, extra=()):
    x = e.clone().requires_grad_(True)
    r = None if ref is None else ref.clone().requires_grad_(True)
    value = loss(x, y, tup, r, ref_y)
    wrt = [x] + ([r] if r is not None else []) + list(extra)
    grads = torch.autograd.grad(value, wrt, allow_unused=True)
    return value.detach(), [torch.zeros_like(w) if gr is None else gr
                            for w, gr in zip(wrt, grads, strict=True)]


def assert_same(ours, theirs):
    (v1, g1), (v2, g2) = ours, theirs
    torch.testing.assert_close(v1.reshape(()), v2.reshape(()), rtol=1e-9, atol=1e-12)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a.reshape(b.shape), b, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("seed", range(3))
def test_triplet_equals_pml_triplet_margin_loss(case, seed, metric_path):
    e, y, g = batch(seed)
    tup, ref, ref_y = tuples(case, e, y, g, "triplets")
    ours = create_loss("triplet", margin=0.3)
    theirs = pml_losses.TripletMarginLoss(margin=0.3)
    assert_same(run(ours, e, y, tup, ref, ref_y), run(theirs, e, y, tup, ref, ref_y))


@pytest.mark.parametrize("per_class", [False, True], ids=["one-beta", "per-class"])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("seed", range(3))
def test_margin_equals_pml_margin_loss_with_learned_beta(case, seed, per_class, metric_path):
    e, y, g = batch(seed)
    tup, ref, ref_y = tuples(case, e, y, g, "triplets")
    kw = dict(margin=0.2, beta=1.1, nu=0.05, num_classes=6 if per_class else None)
    ours = create_loss("margin", learn_beta=True, **kw).double()
    theirs = pml_losses.MarginLoss(learn_beta=True, **kw).double()
    assert_same(run(ours, e, y, tup, ref, ref_y, [ours.beta]),
                run(theirs, e, y, tup, ref, ref_y, [theirs.beta]))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("seed", range(3))
def test_contrastive_equals_pml_contrastive_loss(case, seed, metric_path):
    e, y, g = batch(seed)
    tup, ref, ref_y = tuples(case, e, y, g, "pairs")
    ours = create_loss("contrastive", pos_margin=0.2, neg_margin=1.1)
    theirs = pml_losses.ContrastiveLoss(pos_margin=0.2, neg_margin=1.1)
    assert_same(run(ours, e, y, tup, ref, ref_y), run(theirs, e, y, tup, ref, ref_y))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("seed", range(3))
def test_multi_similarity_equals_pml(case, seed, metric_path):
    e, y, g = batch(seed)
    tup, ref, ref_y = tuples(case, e, y, g, "pairs")
    ours = create_loss("multi-similarity", alpha=2.0, beta=40.0, base=0.4)
    theirs = pml_losses.MultiSimilarityLoss(alpha=2.0, beta=40.0, base=0.4)
    assert_same(run(ours, e, y, tup, ref, ref_y), run(theirs, e, y, tup, ref, ref_y))


def test_contrastive_squared_option_is_hadsell_form():
    e, y, g = batch(0)
    tup = NearestPositiveMiner(output="pairs")(e, y)
    a1, p, a2, n = tup
    x = torch.nn.functional.normalize(e, dim=1)
    pos = ((x[a1] - x[p]).norm(dim=1) - 0.1).relu().square()
    neg = (1.0 - (x[a2] - x[n]).norm(dim=1)).relu().square()
    expect = pos[pos > 0].mean() + neg[neg > 0].mean()
    got = create_loss("contrastive", pos_margin=0.1, squared=True)(e, y, tup)
    torch.testing.assert_close(got, expect)


def test_margin_without_learned_beta_has_no_regulariser():
    e, y, _ = batch(1)
    tup = NearestPositiveMiner()(e, y)
    ours = create_loss("margin", learn_beta=False, nu=0.5)
    theirs = pml_losses.MarginLoss(learn_beta=False, nu=0.5)
    torch.testing.assert_close(ours(e, y, tup), theirs(e, y, tup))


@pytest.mark.parametrize("name,cls", [("contrastive", "ContrastiveLoss"),
                                      ("multi-similarity", "MultiSimilarityLoss")])
def test_documented_difference_single_pair(name, cls):
    """PML's pair losses return 0 whenever every index tensor has at most one entry (one
    positive and one negative pair); ours computes the loss of that pair."""
    e, y, _ = batch(2)
    tup = (torch.tensor([0]), torch.tensor([1]), torch.tensor([0]), torch.tensor([7]))
    assert getattr(pml_losses, cls)()(e, y, tup).item() == 0.0
    assert create_loss(name)(e, y, tup).item() > 0.0
