"""Pair output: the negative pairs are the wrapped loss's own, nearest-positive changes
only the positives.

negatives="all": every (anchor, negative) pair, anchors without a positive included,
exactly PML's get_all_pairs_indices. The other strategies pick a negative for an
(anchor, positive) tuple, so only anchors with a positive get one (PML's own miners for
them do the same).
"""

import pytest
import torch

pytest.importorskip("pytorch_metric_learning")
from pytorch_metric_learning import losses, miners  # noqa: E402
from pytorch_metric_learning.distances import LpDistance  # noqa: E402
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu  # noqa: E402

from nearest_positive import NearestPositive, NearestPositiveMiner  # noqa: E402
from nearest_positive.config import SamplerConfig
from nearest_positive.mining import Miner  # noqa: E402


def assert_equal_pairs(got, expect):
    for g, x in zip(got, expect, strict=True):
        assert torch.equal(g.cpu(), x.cpu().long())


def test_reported_case_equals_pml_get_all_pairs_indices(device):
    y = torch.tensor([0, 0, 1, 1, 0, 2, 1, 1, 1], device=device)
    e = torch.arange(9, device=device).float().unsqueeze(1)
    miner = NearestPositiveMiner(output="pairs", distance=LpDistance(normalize_embeddings=False))
    _, _, a2, n = miner(e, y)
    pml = lmu.get_all_pairs_indices(y)
    assert len(a2) == len(pml[2]) == 46
    assert_equal_pairs((a2, n), pml[2:])
    assert 5 in a2.tolist()  # the anchor without a positive keeps its negative pairs


def capture(loss):
    """Record the indices tuple a wrapped loss receives."""
    seen = {}
    forward = loss.forward

    def spy(*args, **kwargs):
        seen["tuple"] = args[2]
        return forward(*args, **kwargs)

    loss.forward = spy
    return seen


@pytest.mark.parametrize("seed", range(12))
def test_random_batches_wrapper_and_miner(seed, device):
    g = torch.Generator().manual_seed(seed)
    b = int(torch.randint(2, 40, (1,), generator=g))
    y = torch.randint(0, int(torch.randint(1, 8, (1,), generator=g)), (b,), generator=g)
    e = torch.randn(b, 5, generator=g)
    y, e = y.to(device), e.to(device)
    pml = lmu.get_all_pairs_indices(y)
    _, _, a2, n = NearestPositiveMiner(output="pairs")(e, y)
    assert_equal_pairs((a2, n), pml[2:])
    for make in (losses.ContrastiveLoss, losses.MultiSimilarityLoss):
        loss = make()
        seen = capture(loss)
        NearestPositive(loss, warn_small_k=False)(e, y)
        assert_equal_pairs(seen["tuple"][2:], pml[2:])
    # all positives and all negatives: the loss's own pairs, both halves
    assert_equal_pairs(Miner(SamplerConfig(output="pairs"), positives="all")(e, y), pml)


def test_reference_set_negatives_are_pml_pairs_against_it(device):
    g = torch.Generator().manual_seed(0)
    e, y = torch.randn(10, 4, generator=g), torch.randint(0, 4, (10,), generator=g)
    ref, ref_y = torch.randn(15, 4, generator=g), torch.randint(0, 5, (15,), generator=g)
    e, y, ref, ref_y = e.to(device), y.to(device), ref.to(device), ref_y.to(device)
    _, _, a2, n = NearestPositiveMiner(output="pairs", self_match="none")(e, y, ref, ref_y)
    assert_equal_pairs((a2, n), lmu.get_all_pairs_indices(y, ref_y)[2:])


def test_memory_wrapper_passes_every_negative_pair(device):
    g = torch.Generator().manual_seed(1)
    loss = losses.ContrastiveLoss()
    seen = capture(loss)
    w = NearestPositive(loss, memory_size=20, warn_small_k=False)
    batches = [(torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g))
               for _ in range(2)]
    for e, y in batches:
        w(e.to(device), y.to(device))
    ref_y = torch.cat([batches[1][1], batches[0][1]])  # this batch, then the memory
    y = batches[1][1]
    assert_equal_pairs(seen["tuple"][2:], lmu.get_all_pairs_indices(y, ref_y)[2:])


def test_hardest_pairs_match_pml_batch_easy_hard(device):
    """Hardest negatives come per (anchor, positive) tuple: anchors without a positive
    get none, as in PML's BatchEasyHardMiner(easy, hard)."""
    g = torch.Generator().manual_seed(2)
    y = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2, 3, 3], device=device)  # 2: no positive
    e = torch.randn(10, 6, generator=g).to(device)
    ours = NearestPositiveMiner(output="pairs", negatives="hardest")(e, y)
    theirs = miners.BatchEasyHardMiner(pos_strategy="easy", neg_strategy="hard")(e, y)
    assert_equal_pairs(ours, theirs)
    assert 7 not in ours[2].tolist()


@pytest.mark.parametrize("negatives", ["semihard", "distance-weighted"])
def test_tuple_strategies_skip_anchors_without_positive(negatives, device):
    y = torch.tensor([0, 0, 0, 1, 1, 2], device=device)
    e = torch.randn(6, 4).to(device)
    a1, p, a2, n = NearestPositiveMiner(output="pairs", negatives=negatives, seed=0)(e, y)
    assert torch.equal(a1, a2) and 5 not in a2.tolist()
    assert (y[n] != y[a2]).all()


def test_triplet_output_unchanged():
    y = torch.tensor([0, 0, 1, 1, 0, 2, 1, 1, 1])
    e = torch.arange(9).float().unsqueeze(1)
    a, p, n = NearestPositiveMiner(distance=LpDistance(normalize_embeddings=False))(e, y)
    assert 5 not in a.tolist()  # a triplet needs a positive
    assert len(a) == sum(int((y != y[i]).sum()) for i in range(9) if i != 5)
