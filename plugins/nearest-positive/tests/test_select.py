import pytest
import torch
from np_reference import nearest

from nearest_positive import select
from nearest_positive import selection as selection_module

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
KINDS = ["euclidean", "squared_euclidean", "cosine"]


def make_case(seed: int):
    g = torch.Generator().manual_seed(seed)
    b = int(torch.randint(1, 11, (1,), generator=g))
    d = int(torch.randint(1, 5, (1,), generator=g))
    integer = seed % 3 == 0  # small integer coordinates: exact ties
    emb = (torch.randint(-2, 3, (b, d), generator=g).double() if integer
           else torch.randn(b, d, generator=g, dtype=torch.float64))
    if seed % 4 == 1 and b > 1:  # duplicate rows
        emb[-1] = emb[0]
    labels = torch.randint(0, 4, (b,), generator=g)  # singletons happen
    mode = seed % 4  # 0: no ref, 1: separate ref, 2: ref contains the batch, 3: both+missing
    ref = ref_labels = ids = ref_ids = None
    if mode:
        m = int(torch.randint(0, 9, (1,), generator=g))
        extra = (torch.randint(-2, 3, (m, d), generator=g).double() if integer
                 else torch.randn(m, d, generator=g, dtype=torch.float64))
        extra_labels = torch.randint(0, 3 if mode == 3 else 4, (m,), generator=g)
        if mode == 1:
            ref, ref_labels = extra, extra_labels
            ids = torch.arange(b)
            ref_ids = 100 + torch.arange(m)
        else:
            perm = torch.randperm(b + m, generator=g)
            ref = torch.cat([emb, extra])[perm]
            ref_labels = torch.cat([labels, extra_labels])[perm]
            ids = torch.arange(b)
            ref_ids = torch.cat([ids, 100 + torch.arange(m)])[perm]
    return emb, labels, ref, ref_labels, ids, ref_ids, integer


@pytest.fixture(params=["grouped", "blocks"])
def path(request, monkeypatch):
    """Run with each exact path: gathered class rows, or one matmul per class tile."""
    limit = 10**9 if request.param == "grouped" else 0
    monkeypatch.setattr(selection_module, "GROUPED_MAX_ROWS", limit)
    return request.param


@pytest.mark.parametrize("chunk", range(4))
def test_matches_brute_force(chunk, path, device):
    for seed in range(chunk * 60, chunk * 60 + 60):  # 240 cases
        emb, labels, ref, ref_labels, ids, ref_ids, integer = make_case(seed)
        dtype = DTYPES[seed % 4]
        kind = KINDS[(seed // 4) % 3]
        normalize = not integer
        tile = [None, 1, 2, 3][(seed // 3) % 4]
        x = emb.to(dtype)
        r = None if ref is None else ref.to(dtype)
        res = select(
            x.to(device), labels.to(device),
            None if r is None else r.to(device),
            None if ref_labels is None else ref_labels.to(device),
            ids=None if ids is None else ids.to(device),
            ref_ids=None if ref_ids is None else ref_ids.to(device),
            distance=kind, normalize=normalize, tile_size=tile,
        )
        b = len(labels)
        ref_x = x if r is None else r
        ref_l = labels if ref_labels is None else ref_labels
        i_ids = list(range(b)) if ids is None else ids.tolist()
        r_ids = i_ids if ref_ids is None else ref_ids.tolist()
        expect = nearest(x, labels, ref_x, ref_l, i_ids, r_ids, kind, normalize)
        got = dict(zip(res.anchors.tolist(), res.positives.tolist(), strict=True))
        missing = [i for i, (best, _) in enumerate(expect) if best is None]
        assert res.missing == len(missing), seed
        assert res.missing_anchors.tolist() == missing, seed
        tol = 1e-9 if integer else 1e-5
        for i, (best, d) in enumerate(expect):
            if best is None:
                continue
            j = got[i]
            assert ref_l[j] == labels[i] and r_ids[j] != i_ids[i], seed
            if integer:  # exact arithmetic: the first minimum, exactly
                assert j == best, (seed, i, j, best)
            else:
                assert d[j] <= d[best] + tol, (seed, i)
                if abs(d[j] - d[best]) > tol:
                    assert j == best
            assert abs(float(res.distances[list(got).index(i)]) - d[j]) < 1e-4 * (1 + d[j])


def test_duplicates_and_copies_tie_to_smallest_index(path, device):
    torch.manual_seed(0)
    for trial in range(12):
        b, k = 20, 6
        e = torch.randn(b, 17)
        e = torch.cat([e, e[:k], e[:k]])  # rows i < k have copies at b + i and b + k + i
        y = torch.randint(0, 3, (b,))
        y = torch.cat([y, y[:k], y[:k]])
        res = select(e.to(device), y.to(device), tile_size=1 + trial % 7)
        pos = dict(zip(res.anchors.tolist(), res.positives.tolist(), strict=True))
        for i in range(k):
            assert pos[i] == b + i


def test_reference_with_batch_copies_excludes_self_before_choosing(device):
    torch.manual_seed(1)
    e = torch.randn(8, 4, device=device)
    y = torch.tensor([0, 0, 0, 1, 1, 1, 2, 3], device=device)
    ids = torch.arange(8, device=device)
    bank = torch.cat([e, e])  # two copies of the batch, e.g. a memory bank
    bank_y = torch.cat([y, y])
    res = select(e, y, bank, bank_y, ids=ids, ref_ids=torch.cat([ids, ids]))
    in_batch = select(e, y)
    assert torch.equal(res.anchors, in_batch.anchors)
    assert torch.equal(res.positives % 8, in_batch.positives)
    assert res.missing == 2  # classes 2 and 3 have one sample each


def test_tiles_do_not_change_the_result(path, device):
    torch.manual_seed(2)
    e = torch.randn(300, 16, device=device)
    y = torch.randint(0, 20, (300,), device=device)
    whole = select(e, y, tile_size=300)
    for tile in (1, 7, 64):
        part = select(e, y, tile_size=tile)
        assert torch.equal(part.anchors, whole.anchors)
        assert torch.equal(part.positives, whole.positives)


def test_output_types_and_no_grad(device):
    e = torch.randn(6, 3, device=device, requires_grad=True)
    y = torch.tensor([0, 0, 1, 1, 2, 2], device=device)
    res = select(e, y)
    assert res.anchors.dtype == torch.int64 and res.positives.dtype == torch.int64
    assert not res.distances.requires_grad
    assert res.anchors.device.type == device.type


def test_on_missing_error_names_the_rows():
    e = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"1 anchor\(s\) have no positive.*\[3\]"):
        select(e, torch.tensor([0, 0, 0, 2]), on_missing="error")


def test_random_and_hardest_positive_strategies(path):
    torch.manual_seed(3)
    e = torch.randn(40, 5)
    y = torch.randint(0, 4, (40,))
    hard = select(e, y, strategy="hardest")
    near = select(e, y)
    assert (hard.distances >= near.distances - 1e-6).all()
    r1 = select(e, y, strategy="random", seed=5)
    r2 = select(e, y, strategy="random", seed=5)
    assert torch.equal(r1.positives, r2.positives)
    assert (y[r1.positives] == y[r1.anchors]).all() and (r1.positives != r1.anchors).all()
    picks = {select(e, y, strategy="random", seed=s).positives[0].item() for s in range(30)}
    assert len(picks) > 1
