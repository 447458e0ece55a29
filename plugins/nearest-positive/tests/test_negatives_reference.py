"""Negatives from one score block per anchor tile, against brute-force loops.

Integer coordinates without normalisation in float64 make every score exact, so ties
are frequent and the chosen index must equal the reference's exactly.
"""

import math

import pytest
import torch

from nearest_positive import negatives as neg_module
from nearest_positive.config import SamplerConfig
from nearest_positive.mining import Miner
from nearest_positive.negatives import (
    DW_CUTOFF,
    DW_NONZERO_LOSS_CUTOFF,
    distance_weighted_negatives,
)
from nearest_positive.selection import prepare


def int_case(seed: int):
    """Small integer embeddings (exact scores, many ties) with a mode of reference set:
    0 none, 1 separate reference, 2 reference holding the batch (a memory bank)."""
    g = torch.Generator().manual_seed(seed)
    b = int(torch.randint(1, 13, (1,), generator=g))
    d = int(torch.randint(1, 4, (1,), generator=g))
    n_labels = int(torch.randint(1, 5, (1,), generator=g))  # 1: nobody has a negative
    e = torch.randint(-2, 3, (b, d), generator=g).double()
    y = torch.randint(0, n_labels, (b,), generator=g)
    mode = seed % 3
    if mode == 0:
        return e, y, None, None, None, None
    m = int(torch.randint(1, 10, (1,), generator=g))
    extra = torch.randint(-2, 3, (m, d), generator=g).double()
    extra_y = torch.randint(0, n_labels, (m,), generator=g)
    ids = torch.arange(b)
    if mode == 1:
        return e, y, extra, extra_y, ids, 100 + torch.arange(m)
    return (e, y, torch.cat([e, extra]), torch.cat([y, extra_y]), ids,
            torch.cat([ids, 100 + torch.arange(m)]))


def score(a: list[float], r: list[float]) -> float:
    """The package's score units for the Euclidean kinds: |r|^2 - 2 a.r (exact here)."""
    return sum(x * x for x in r) - 2 * sum(x * z for x, z in zip(a, r, strict=True))


def first_best(cands: list[int], key, largest: bool = False) -> int:
    best = None
    for j in cands:  # ascending: the first of equal keys wins
        if best is None or (key(j) > key(best) if largest else key(j) < key(best)):
            best = j
    return best


def reference_semihard(E, R, y, yr, a: int, q: float) -> int | None:
    negs = [j for j in range(len(R)) if yr[j] != y[a]]
    if not negs:
        return None
    s = lambda j: score(E[a], R[j])  # noqa: E731
    beyond = [j for j in negs if s(j) > q]
    return first_best(beyond, s) if beyond else first_best(negs, s, largest=True)


def reference_hardest(E, R, y, yr, a: int) -> int | None:
    negs = [j for j in range(len(R)) if yr[j] != y[a]]
    return first_best(negs, lambda j: score(E[a], R[j])) if negs else None


def mine(case, device="cpu", **opts):
    e, y, ref, ref_y, ids, ref_ids = (None if t is None else t.to(device) for t in case)
    positives = opts.pop("positives", "nearest")
    m = Miner(SamplerConfig(normalize=False, distance="squared_euclidean", **opts), positives)
    out = m(e, y, ref, ref_y, ids=ids, ref_ids=ref_ids)
    return tuple(t.cpu() for t in out), m.last_diagnostics


@pytest.fixture(params=["slots", "sort"])
def semihard_path(request, monkeypatch):
    """Anchors with several pairs: one masked pass per pair slot, or one sort per row."""
    monkeypatch.setattr(neg_module, "SEMIHARD_SLOT_MAX", 10**9 if request.param == "slots" else 0)
    return request.param


@pytest.mark.parametrize("positives", ["all", "nearest", "random"])
@pytest.mark.parametrize("tile", [None, 1, 2, 5])
def test_semihard_equals_brute_force(positives, tile, semihard_path, device):
    for seed in range(40):
        case = int_case(seed)
        e, y, ref, ref_y = case[:4]
        R = (e if ref is None else ref).tolist()
        yr = (y if ref is None else ref_y).tolist()
        (a, p, n), _ = mine(case, device, positives=positives, negatives="semihard",
                            tile_size=tile, seed=seed)
        (a_all, p_all, _), _ = mine(case, device, positives=positives, negatives="all",
                                    seed=seed)
        E, yl = e.tolist(), y.tolist()
        expect = []
        for ai, pi in dict.fromkeys(zip(a_all.tolist(), p_all.tolist(), strict=True)):
            ni = reference_semihard(E, R, yl, yr, ai, score(E[ai], R[pi]))
            if ni is not None:
                expect.append((ai, pi, ni))
        got = list(zip(a.tolist(), p.tolist(), n.tolist(), strict=True))
        assert got == expect, (seed, positives, tile)


@pytest.mark.parametrize("positives", ["all", "nearest"])
@pytest.mark.parametrize("output", ["triplets", "pairs"])
def test_hardest_equals_brute_force(positives, output, device):
    for seed in range(40):
        case = int_case(seed)
        e, y, ref, ref_y = case[:4]
        R = (e if ref is None else ref).tolist()
        yr = (y if ref is None else ref_y).tolist()
        E, yl = e.tolist(), y.tolist()
        (a1_all, p1_all, _, _), _ = mine(case, device, positives=positives, output="pairs")
        rows = list(zip(a1_all.tolist(), p1_all.tolist(), strict=True))  # every positive
        got, _ = mine(case, device, positives=positives, negatives="hardest", output=output,
                      tile_size=1 + seed % 3)
        if output == "triplets":
            expect = [(ai, pi, reference_hardest(E, R, yl, yr, ai)) for ai, pi in rows]
            expect = [t for t in expect if t[2] is not None]
            assert list(zip(*(t.tolist() for t in got), strict=True)) == expect, seed
        else:  # one negative pair per anchor that has a positive
            a1, p1, a2, n2 = (t.tolist() for t in got)
            assert list(zip(a1, p1, strict=True)) == rows
            anchors = sorted({ai for ai, _ in rows})
            expect = [(ai, reference_hardest(E, R, yl, yr, ai)) for ai in anchors]
            assert list(zip(a2, n2, strict=True)) == [t for t in expect if t[1] is not None]


@pytest.mark.parametrize("positives", ["all", "nearest"])
def test_all_negatives_triplets_and_diagnostics(positives):
    for seed in range(30):
        case = int_case(seed)
        e, y, ref, ref_y = case[:4]
        R = (e if ref is None else ref)
        yr = (y if ref is None else ref_y).tolist()
        (a_all, p_all, n_all), diag = mine(case, positives=positives, negatives="all",
                                           tile_size=1 + seed % 4)
        (a_h, p_h, _), _ = mine(case, positives=positives, negatives="hardest")
        rows = list(dict.fromkeys(zip(a_h.tolist(), p_h.tolist(), strict=True)))
        expect = [(ai, pi, j) for ai, pi in rows for j in range(len(R)) if yr[j] != y[ai]]
        got = list(zip(a_all.tolist(), p_all.tolist(), n_all.tolist(), strict=True))
        assert got == expect, seed
        if expect:  # mean distance over the triplets' (anchor, negative) entries
            d = [float(((e[ai] - R[j]) ** 2).sum()) for ai, _, j in expect]
            assert diag["mean_an_distance"] == pytest.approx(sum(d) / len(d))
        assert diag["tuples"] == len(expect)


def unit_case(seed: int, b: int = 24, d: int = 6, classes: int = 4, ref_rows: int = 0):
    g = torch.Generator().manual_seed(seed)
    e = torch.randn(b, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, classes, (b,), generator=g)
    if not ref_rows:
        return e, y, None, None
    ref = torch.randn(ref_rows, d, generator=g, dtype=torch.float64)
    return e, y, ref, torch.randint(0, classes, (ref_rows,), generator=g)


def dw_reference(e, y, ref, ref_y, a: int, u: float) -> int | None:
    """Inverse CDF of Wu et al.'s weights over anchor a's negatives, in float64 loops."""
    x = torch.nn.functional.normalize(e, dim=1).tolist()
    r = torch.nn.functional.normalize(e if ref is None else ref, dim=1).tolist()
    yr = (y if ref is None else ref_y).tolist()
    dim = len(x[0])
    negs = [j for j in range(len(r)) if yr[j] != y[a]]
    if not negs:
        return None
    dist = {j: math.dist(x[a], r[j]) for j in negs}
    eligible = [j for j in negs if dist[j] < DW_NONZERO_LOSS_CUTOFF]
    if eligible:
        logw = {}
        for j in eligible:
            dj = max(dist[j], DW_CUTOFF)
            logw[j] = (2 - dim) * math.log(dj) - (dim - 3) / 2 * math.log(1 - dj * dj / 4)
        top = max(logw.values())
        w = {j: math.exp(v - top) for j, v in logw.items()}
    else:  # uniform among all negatives
        w = dict.fromkeys(negs, 1.0)
    target, acc = u * sum(w.values()), 0.0
    for j in sorted(w):
        acc += w[j]
        if acc > target:
            return j
    return max(w)


@pytest.mark.parametrize("ref_rows", [0, 9])
@pytest.mark.parametrize("tile", [None, 1, 4])
@pytest.mark.parametrize("distinct", [True, False], ids=["one-per-anchor", "repeated"])
def test_distance_weighted_is_the_inverse_cdf_of_the_weights(ref_rows, tile, distinct):
    for seed in range(6):
        e, y, ref, ref_y = unit_case(seed, ref_rows=ref_rows)
        e = e * 0.3 + e[0]  # a tight cloud: many negatives inside the 1.4 cut-off
        p = prepare(e, y, ref, ref_y, None, None, "euclidean", True, tile)
        a = torch.arange(len(y)) if distinct else torch.randint(0, len(y), (40,))
        if not distinct:
            a = a.sort().values
        u = torch.rand(len(a), generator=torch.Generator().manual_seed(seed),
                       dtype=torch.float64)
        r = distance_weighted_negatives(p, a, torch.Generator().manual_seed(seed),
                                        distinct=distinct)
        for i, ai in enumerate(a.tolist()):
            expect = dw_reference(e, y, ref, ref_y, ai, float(u[i]))
            assert bool(r.ok[i]) == (expect is not None)
            if expect is not None:
                assert int(r.index[i]) == expect, (seed, ai)


def test_distance_weighted_frequencies_follow_the_weights():
    e, y, _, _ = unit_case(3, b=10, d=4, classes=3)
    e = e * 0.4 + e[0]
    p = prepare(e, y, None, None, None, None, "euclidean", True, None)
    a = torch.zeros(20000, dtype=torch.long)  # one anchor, many rows: one draw each
    r = distance_weighted_negatives(p, a, torch.Generator().manual_seed(0))
    counts = torch.bincount(r.index, minlength=len(y)).double() / len(a)
    # exact probabilities: the inverse CDF's interval widths
    probs = torch.zeros(len(y), dtype=torch.float64)
    for k in range(2001):
        j = dw_reference(e, y, None, None, 0, (k + 0.5) / 2001)
        probs[j] += 1 / 2001
    assert torch.allclose(counts, probs, atol=0.02)
    assert counts[y == y[0]].sum() == 0


def test_distance_weighted_uniform_fallback_with_a_memory_bank():
    g = torch.Generator().manual_seed(4)
    v = torch.randn(4, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2])
    # class 0 around +v, the others around -v: anchor 0's negatives are all beyond 1.4
    e = torch.where((y == 0).unsqueeze(1), v, -v) + 0.05 * torch.randn(8, 4, generator=g,
                                                                      dtype=torch.float64)
    ids = torch.arange(8)
    bank, bank_y = torch.cat([e, e]), torch.cat([y, y])
    p = prepare(e, y, bank, bank_y, ids, torch.cat([ids, ids]), "euclidean", True, None)
    a = torch.zeros(8000, dtype=torch.long)
    r = distance_weighted_negatives(p, a, torch.Generator().manual_seed(0))
    freq = torch.bincount(r.index, minlength=16).double() / len(a)
    negs = bank_y != 0
    assert freq[~negs].sum() == 0  # never the anchor's own copies or classmates
    assert torch.allclose(freq[negs], torch.full((10,), 0.1, dtype=torch.float64), atol=0.02)
    m = Miner(SamplerConfig(negatives="distance-weighted", seed=1))
    a, p_, n = m(e, y, bank, bank_y, ids=ids, ref_ids=torch.cat([ids, ids]))
    assert (bank_y[n] != y[a]).all() and (p_ % 8 != a).all()


def test_distance_weighted_draw_does_not_depend_on_the_tile():
    e, y, _, _ = unit_case(5, b=40, d=6)
    e = e * 0.3 + e[0]
    runs = [Miner(SamplerConfig(negatives="distance-weighted", seed=3, tile_size=t))(e, y)
            for t in (None, 1, 7)]
    for other in runs[1:]:
        assert all(torch.equal(x, z) for x, z in zip(runs[0], other, strict=True))


@pytest.mark.parametrize("negatives", ["semihard", "hardest", "distance-weighted"])
def test_anchors_without_negatives_get_no_tuple(negatives):
    e = torch.randn(6, 3)
    y = torch.tensor([0, 0, 0, 1, 1, 2])
    ref = torch.randn(4, 3)
    ref_y = torch.tensor([0, 0, 0, 0])  # only class 0 lacks negatives here
    a, p, n = Miner(SamplerConfig(negatives=negatives, seed=0), positives="all")(
        e, y, ref, ref_y)
    assert len(a) == 0  # class 0 has positives but no negative; others no positive
    a, p, n = Miner(SamplerConfig(negatives=negatives, seed=0))(e, y)
    assert set(a.tolist()) == {0, 1, 2, 3, 4} and (y[n] != y[a]).all()
