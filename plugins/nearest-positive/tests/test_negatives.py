import torch
from np_reference import rows

from nearest_positive.config import SamplerConfig
from nearest_positive.mining import Miner
from nearest_positive.negatives import DW_NONZERO_LOSS_CUTOFF


def data(seed=0, n=30, d=6, classes=5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randint(0, classes, (n,), generator=g)


def dist(E, i, j):
    return sum((a - b) ** 2 for a, b in zip(E[i], E[j], strict=True)) ** 0.5


def test_semihard_is_closest_negative_beyond_the_positive():
    for seed in range(5):
        e, y = data(seed)
        E = rows(e, True)
        a, p, n = Miner(SamplerConfig(negatives="semihard", tile_size=4))(e, y)
        for ai, pi, ni in zip(a.tolist(), p.tolist(), n.tolist(), strict=True):
            dap = dist(E, ai, pi)
            negs = [j for j in range(len(y)) if y[j] != y[ai]]
            beyond = [j for j in negs if dist(E, ai, j) > dap]
            if beyond:
                assert abs(dist(E, ai, ni) - min(dist(E, ai, j) for j in beyond)) < 1e-5
            else:  # documented fallback: the farthest negative
                assert abs(dist(E, ai, ni) - max(dist(E, ai, j) for j in negs)) < 1e-5


def test_hardest_negative():
    e, y = data(1)
    E = rows(e, True)
    a, p, n = Miner(SamplerConfig(negatives="hardest"))(e, y)
    for ai, ni in zip(a.tolist(), n.tolist(), strict=True):
        negs = [j for j in range(len(y)) if y[j] != y[ai]]
        assert abs(dist(E, ai, ni) - min(dist(E, ai, j) for j in negs)) < 1e-5


def test_all_negatives_enumerates_every_triplet():
    e, y = data(2, n=12, classes=3)
    a, p, n = Miner(SamplerConfig(negatives="all"))(e, y)
    for ai in set(a.tolist()):
        got = sorted(n[a == ai].tolist())
        assert got == [j for j in range(12) if y[j] != y[ai]]


def test_distance_weighted_is_seeded_and_respects_cutoff():
    e, y = data(3, n=64, d=16, classes=4)
    run = lambda s: Miner(SamplerConfig(negatives="distance-weighted", seed=s))(e, y)  # noqa: E731
    a1, _, n1 = run(7)
    _, _, n2 = run(7)
    _, _, n3 = run(8)
    assert torch.equal(n1, n2) and not torch.equal(n1, n3)
    assert (y[n1] != y[a1]).all()
    E = rows(e, True)
    for ai, ni in zip(a1.tolist(), n1.tolist(), strict=True):
        eligible = [
            j for j in range(64) if y[j] != y[ai] and dist(E, ai, j) < DW_NONZERO_LOSS_CUTOFF
        ]
        if eligible:
            assert dist(E, ai, ni) < DW_NONZERO_LOSS_CUTOFF


def test_pairs_output_and_diagnostics():
    e, y = data(4)
    m = Miner(SamplerConfig(negatives="hardest", output="pairs"))
    a1, p, a2, n = m(e, y)
    d = m.last_diagnostics
    assert d["tuples"] == len(a1) + len(a2)
    assert d["anchors"] + d["anchors_without_positive"] == len(y)
    assert 0 < d["mean_ap_distance"] and 0 < d["mean_an_distance"]
