"""Metrics: hand-computed tiny cases, a dense reference, the chunked path, bad input."""

from __future__ import annotations

import pytest
import torch

from nearpos_runtime.training.data import DataError
from nearpos_runtime.training.metrics import evaluate_embeddings, nmi, pca_2d, retrieval_metrics


def dense_reference(emb, labels, gallery=None, gallery_labels=None, ks=(1, 2, 4, 8)):
    """Straight from the definitions: one query at a time, full sort by (distance, index)."""
    self_mode = gallery is None
    g = emb if self_mode else gallery
    gl = labels if self_mode else gallery_labels
    sums = {f"recall@{k}": 0.0 for k in ks} | {"r_precision": 0.0, "map@r": 0.0}
    n = 0
    for i in range(emb.shape[0]):
        cands = [j for j in range(g.shape[0]) if not (self_mode and j == i)]
        dist = [float(((emb[i].double() - g[j].double()) ** 2).sum()) for j in cands]
        order = [c for _, c in sorted(zip(dist, cands, strict=True))]
        rel = [int(gl[j] == labels[i]) for j in order]
        r = sum(rel)
        if r == 0:
            continue
        n += 1
        for k in ks:
            sums[f"recall@{k}"] += float(any(rel[:k]))
        sums["r_precision"] += sum(rel[:r]) / r
        hits, ap = 0, 0.0
        for pos, x in enumerate(rel[:r], start=1):
            hits += x
            ap += x * hits / pos
        sums["map@r"] += ap / r
    return {k: v / n for k, v in sums.items()}


def test_hand_computed_line():
    # Points on a line: 0 1 2 10 11; labels a a b b a.
    emb = torch.tensor([[0.0], [1.0], [2.0], [10.0], [11.0]])
    labels = torch.tensor([0, 0, 1, 1, 0])
    m = retrieval_metrics(emb, labels, ks=[1, 2])
    # q0: nn 1(a) 2(b) 3 4 -> R=2, top2 = [a,b]: P@1 1, rprec 1/2, ap = (1*1)/2 = 0.5
    # q1: nn 0(a) 2(b) 3 4 -> same as q0: 1, 1/2, 0.5
    # q2: nn 1(a) 0(a) 3(b) -> R=1, top1 a: 0, rprec 0, ap 0; r@2: [a,a] 0
    # q3: nn 4(a) 2(b) -> R=1: 0 ; r@2 1 ; rprec 0 ; ap 0
    # q4: nn 3(b) 2(b) 1(a) 0(a) -> R=2: r@1 0, r@2 0, rprec 0, ap 0
    assert m["recall@1"] == pytest.approx(2 / 5)
    assert m["recall@2"] == pytest.approx(3 / 5)
    assert m["r_precision"] == pytest.approx((0.5 + 0.5) / 5)
    assert m["map@r"] == pytest.approx((0.5 + 0.5) / 5)
    assert m["queries"] == 5 and m["queries_without_match"] == 0


def test_map_at_r_rewards_order():
    # Query 0 with R = 2: relevant at ranks 1 and 3 -> MAP@R = (1 + 0)/2, R-Prec = 1/2.
    emb = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    labels = torch.tensor([7, 7, 8, 7])
    m = retrieval_metrics(emb[:4], labels, ks=[1])
    ref = dense_reference(emb, labels, ks=(1,))
    assert m["map@r"] == pytest.approx(ref["map@r"])
    assert m["r_precision"] == pytest.approx(ref["r_precision"])


def test_ties_go_to_smaller_index():
    # Query 0 has two references at the same distance: index 1 (other label) comes first.
    emb = torch.tensor([[0.0], [1.0], [-1.0]])
    labels = torch.tensor([0, 1, 0])
    m = retrieval_metrics(emb, labels, ks=[1])
    # q0: tie 1 (b) before 2 (a) -> miss; q1: nearest 0 (a) -> miss (R=0: skipped)
    # q2: nearest 0 (a) -> hit.
    assert m["queries_without_match"] == 1
    assert m["recall@1"] == pytest.approx(0.5)


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_chunked_equals_dense_reference(chunk):
    g = torch.Generator().manual_seed(3)
    emb = torch.nn.functional.normalize(torch.randn(90, 6, generator=g), dim=1)
    labels = torch.randint(0, 6, (90,), generator=g)
    got = retrieval_metrics(emb, labels, ks=[1, 2, 4, 8], chunk_size=chunk)
    ref = dense_reference(emb, labels)
    for k, v in ref.items():
        assert got[k] == pytest.approx(v, abs=1e-6), k


def test_query_gallery_mode_matches_reference():
    g = torch.Generator().manual_seed(4)
    q, gal = torch.randn(30, 5, generator=g), torch.randn(50, 5, generator=g)
    ql, gl = torch.randint(0, 4, (30,), generator=g), torch.randint(0, 4, (50,), generator=g)
    got = retrieval_metrics(q, ql, gal, gl, ks=[1, 4], chunk_size=8)
    ref = dense_reference(q, ql, gal, gl, ks=(1, 4))
    for k, v in ref.items():
        assert got[k] == pytest.approx(v, abs=1e-6), k


def test_perfect_clusters_score_one():
    emb = torch.tensor([[0.0, 0], [0, 0.1], [5, 5], [5, 5.1], [9, 0], [9.1, 0]])
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    out = evaluate_embeddings(emb, labels, ks=[1], seed=0)
    assert out["coarse"]["recall@1"] == 1.0 and out["coarse"]["map@r"] == 1.0
    assert out["coarse"]["nmi"] == pytest.approx(1.0)
    assert "fine" not in out


def test_fine_metrics_present_with_fine_labels():
    emb = torch.tensor([[0.0], [0.1], [5.0], [5.1]])
    out = evaluate_embeddings(emb, torch.tensor([0, 0, 0, 0]), torch.tensor([0, 0, 1, 1]))
    assert out["fine"]["recall@1"] == 1.0
    assert out["fine"]["nmi"] == pytest.approx(1.0)


def test_nmi_is_seeded():
    g = torch.Generator().manual_seed(5)
    emb, labels = torch.randn(60, 4, generator=g), torch.randint(0, 3, (60,), generator=g)
    assert nmi(emb, labels, seed=1) == nmi(emb, labels, seed=1)


@pytest.mark.parametrize(
    "emb,labels,match",
    [
        (torch.tensor([[0.0], [float("nan")]]), torch.tensor([0, 0]), "NaN or Inf"),
        (torch.tensor([[0.0], [1.0]]), torch.tensor([0, 0, 1]), "labels have shape"),
        (torch.empty(0, 3), torch.empty(0, dtype=torch.long), "empty"),
        (torch.tensor([[0.0]]), torch.tensor([0]), "at least two"),
    ],
)
def test_bad_input(emb, labels, match):
    with pytest.raises(DataError, match=match):
        retrieval_metrics(emb, labels)


def test_pca_deterministic_and_centred():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(40, 8, generator=g) * torch.arange(1, 9)
    p = pca_2d(x)
    assert p.shape == (40, 2)
    assert torch.equal(p, pca_2d(x.clone()))
    assert p.mean(0).abs().max() < 1e-5
    # the first axis carries the most variance
    assert p[:, 0].var() >= p[:, 1].var()


def _ten_modes_in_five_classes(seed: int = 7) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """10 tight modes on a circle-ish layout in 8-D, two per coarse class: the case where
    k-means with k = 5 has many near-equal ways to merge modes."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(10, 8, generator=g) * 3
    fine = torch.arange(10).repeat_interleave(40)
    emb = centres[fine] + 0.3 * torch.randn(400, 8, generator=g)
    return emb, fine // 2, fine


def test_nmi_of_a_fixed_embedding_does_not_depend_on_the_kmeans_seed():
    emb, coarse, fine = _ten_modes_in_five_classes()
    for labels in (coarse, fine):
        values = [nmi(emb, labels, seed=s) for s in range(6)]
        assert max(values) - min(values) < 1e-6, values


def test_fine_nmi_reported_beside_coarse():
    emb, coarse, fine = _ten_modes_in_five_classes()
    out = evaluate_embeddings(emb, coarse, fine, ks=[1])
    assert out["fine"]["nmi"] > 0.95  # ten separated modes: k-means with k = 10 finds them
    assert out["coarse"]["nmi"] < out["fine"]["nmi"]


def test_fine_recall_at_1_per_coarse_class():
    # coarse 0 keeps its two fine modes apart; coarse 1 mixes them (nearest neighbour of the
    # other fine label)
    emb = torch.tensor([[0.0], [0.1], [5.0], [5.1], [10.0], [20.0], [10.1], [20.1]])
    coarse = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    fine = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    out = evaluate_embeddings(emb, coarse, fine, ks=[1], with_nmi=False)
    assert out["fine"]["recall@1/class=0"] == 1.0
    assert out["fine"]["recall@1/class=1"] == 0.0
    assert out["fine"]["recall@1"] == 0.5
    assert not any(k.startswith("recall@1/") for k in out["coarse"])


def test_per_class_recall_matches_the_overall_recall_on_random_data():
    g = torch.Generator().manual_seed(3)
    emb = torch.randn(300, 5, generator=g)
    fine = torch.randint(0, 12, (300,), generator=g)
    coarse = fine // 3
    out = retrieval_metrics(emb, fine, ks=[1], chunk_size=64, groups=coarse)
    sizes = torch.bincount(coarse).double()
    weighted = sum(out[f"recall@1/class={c}"] * sizes[c] for c in range(4)) / sizes.sum()
    assert weighted == pytest.approx(out["recall@1"], abs=1e-12)
