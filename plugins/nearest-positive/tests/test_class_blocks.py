"""The matmul path for large classes (more than GROUPED_MAX_ROWS reference rows), with its
default routing: large classes in score blocks, small ones gathered, in one call."""

import pytest
import torch

from nearest_positive import class_blocks, select
from nearest_positive import selection as selection_module


def brute(emb, labels, ref, ref_labels, ids, ref_ids, kind, largest=False):
    """float64 distances over all pairs; invalid pairs at +-inf; first index on ties."""
    a = torch.nn.functional.normalize(emb.double().cpu(), dim=1)
    r = torch.nn.functional.normalize(ref.double().cpu(), dim=1)
    if kind == "cosine":
        d = 1.0 - a @ r.T
    else:
        d = torch.cdist(a, r)
        d = d.pow(2) if kind == "squared_euclidean" else d
    other_label = labels.cpu()[:, None] != ref_labels.cpu()[None]
    bad = other_label | (ids.cpu()[:, None] == ref_ids.cpu()[None])
    d = d.masked_fill(bad, float("-inf") if largest else float("inf"))
    val, idx = d.max(1) if largest else d.min(1)
    return d, val, idx, torch.isfinite(val)


def mixed_case(seed: int, device):
    """One class of 90 rows, one of 40, 30 classes of 3; the reference holds two copies
    of the batch plus extra rows, shuffled."""
    g = torch.Generator().manual_seed(seed)
    y = torch.cat([torch.zeros(90), torch.ones(40), 2 + torch.arange(30).repeat_interleave(3)])
    y = y.long()
    e = torch.randn(len(y), 12, generator=g)
    extra = torch.randn(50, 12, generator=g)
    extra_y = torch.randint(0, 8, (50,), generator=g)
    ids = torch.arange(len(y))
    ref = torch.cat([e, e, extra])
    ref_y = torch.cat([y, y, extra_y])
    ref_ids = torch.cat([ids, ids, 1000 + torch.arange(50)])
    perm = torch.randperm(len(ref), generator=g)
    return [t.to(device) for t in (e, y, ref[perm], ref_y[perm], ids, ref_ids[perm])]


@pytest.mark.parametrize("kind", ["euclidean", "squared_euclidean", "cosine"])
@pytest.mark.parametrize("strategy", ["nearest", "hardest"])
def test_mixed_classes_match_brute_force(kind, strategy, device):
    assert selection_module.GROUPED_MAX_ROWS < 40  # classes 0 and 1 take the block path
    for seed in range(3):
        e, y, ref, ref_y, ids, ref_ids = mixed_case(seed, device)
        res = select(e, y, ref, ref_y, ids=ids, ref_ids=ref_ids, distance=kind,
                     strategy=strategy, tile_size=[None, 7, 64][seed])
        d, val, idx, ok = brute(e, y, ref, ref_y, ids, ref_ids, kind, strategy == "hardest")
        assert res.anchors.tolist() == torch.nonzero(ok).squeeze(1).tolist()
        got = d[res.anchors.cpu(), res.positives.cpu()]
        torch.testing.assert_close(got, val[ok], atol=1e-5, rtol=0)
        torch.testing.assert_close(res.distances.cpu().double(), val[ok], atol=1e-4, rtol=0)
        # the chosen rows are the brute-force ones wherever the best is clearly separated
        second = d.clone()
        second[torch.arange(len(idx)), idx] = float("-inf" if strategy == "hardest" else "inf")
        gap = (second.max(1).values - val).abs() if strategy == "hardest" else (
            second.min(1).values - val)
        clear = (gap > 1e-4)[ok]
        assert torch.equal(res.positives.cpu()[clear], idx[ok][clear])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
@pytest.mark.parametrize("kind", ["euclidean", "cosine"])
def test_exact_copies_tie_to_smallest_index_in_blocks(dtype, kind, device):
    """Three copies of 100 rows in one class: every anchor has two candidates at distance 0
    (whose matmul scores can differ by column on some kernels); the first copy wins."""
    torch.manual_seed(4)
    x = torch.randn(100, 33).to(dtype)
    e = torch.cat([x, x, x]).to(device)
    y = torch.zeros(300, dtype=torch.long, device=device)
    res = select(e, y, distance=kind)
    pos = res.positives.cpu()
    i = torch.arange(300)
    expect = torch.where(i < 100, i + 100, i % 100)  # smallest other copy
    assert res.anchors.tolist() == list(range(300))
    assert torch.equal(pos, expect)
    assert float(res.distances.abs().max()) < 1e-3


def test_near_ties_are_re_ranked_on_exact_distances(device):
    """Rows far from the origin: |r|^2 - 2 a.r loses the small differences between
    neighbours to cancellation (float32), so the matmul alone picks wrong neighbours for
    some anchors; the re-ranking on directly computed distances must match float64."""
    torch.manual_seed(6)
    e = 300.0 + 0.5 * torch.randn(60, 16)
    y = torch.zeros(60, dtype=torch.long)
    res = select(e.to(device), y.to(device), normalize=False, distance="squared_euclidean")
    d = torch.cdist(e.double(), e.double()).fill_diagonal_(float("inf"))
    assert torch.equal(res.positives.cpu(), d.min(1).indices)
    scores = torch.cat([-2 * e, (e * e).sum(1, keepdim=True)], 1)
    by_matmul = (torch.cat([e, torch.ones(60, 1)], 1) @ scores.T).fill_diagonal_(float("inf"))
    assert not torch.equal(by_matmul.argmin(1), d.min(1).indices)  # the case is a real one


@pytest.mark.parametrize("largest", [False, True])
def test_best_two_matches_a_full_sort(largest, device):
    """First best column and runner-up value, for widths below, at and across chunks,
    with many exact ties (small integers), distinct values and +-inf entries."""
    g = torch.Generator().manual_seed(7)
    c = class_blocks.CHUNK
    fill = float("-inf") if largest else float("inf")
    for m in (1, 2, c - 1, c, c + 1, 3 * c + 17):
        s = torch.randint(0, 6, (40, m), generator=g).float()
        s[20:] = torch.randn(20, m, generator=g)  # distinct values: runner-up anywhere
        s[torch.rand(40, m, generator=g) < 0.3] = fill
        s[0] = fill  # a row without candidates
        val, idx, second = class_blocks.best_two(s.to(device), largest)
        want_val, want_idx = s.max(1) if largest else s.min(1)
        ranked = s.sort(dim=1, descending=largest, stable=True).values
        want_second = ranked[:, 1] if m > 1 else torch.full((40,), fill)
        assert torch.equal(val.cpu(), want_val)
        finite = torch.isfinite(want_val)
        assert torch.equal(idx.cpu()[finite], want_idx[finite])
        assert torch.equal(second.cpu(), want_second)


def test_degenerate_ties_keep_a_valid_nearest(device):
    """More near-ties per row than MAX_TIES_PER_ROW: the matmul order is kept, which is
    still a distance-0 candidate of the right class and never the anchor itself."""
    n = class_blocks.MAX_TIES_PER_ROW * 2 + 5
    e = torch.ones(n, 8, device=device)
    y = torch.zeros(n, dtype=torch.long, device=device)
    res = select(e, y)
    assert len(res.anchors) == n
    assert (res.positives != res.anchors).all()
    assert float(res.distances.max()) < 1e-3


def test_random_strategy_in_blocks(device):
    torch.manual_seed(5)
    e, y, ref, ref_y, ids, ref_ids = mixed_case(9, device)
    kw = dict(ids=ids, ref_ids=ref_ids, strategy="random")
    r1 = select(e, y, ref, ref_y, seed=3, **kw)
    r2 = select(e, y, ref, ref_y, seed=3, **kw)
    assert torch.equal(r1.positives, r2.positives)
    assert (ref_y[r1.positives] == y[r1.anchors]).all()
    assert (ref_ids[r1.positives] != ids[r1.anchors]).all()
    picks = {int(select(e, y, ref, ref_y, seed=s, **kw).positives[0]) for s in range(20)}
    assert len(picks) > 3  # anchor 0 has 2 * 89 + extra candidates
