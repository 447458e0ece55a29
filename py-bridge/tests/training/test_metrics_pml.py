"""Retrieval metrics against pytorch-metric-learning's AccuracyCalculator (real PML).

Our recall@1, r_precision and map@r follow PML's precision_at_1, r_precision and
mean_average_precision_at_r: self-retrieval leaves the query itself out, a query with no
same-label reference is skipped (PML: a "lone" query), and the mean is over queries.
PML's default k-NN is faiss; here it is torch (CustomKNN over LpDistance), without PML's
default normalisation, since ours ranks by the plain Euclidean distance.
"""

from __future__ import annotations

import pytest
import torch
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN, return_results

from nearpos_runtime.training.metrics import retrieval_metrics

PML_NAMES = {
    "precision_at_1": "recall@1",
    "r_precision": "r_precision",
    "mean_average_precision_at_r": "map@r",
}
DISTANCE = LpDistance(normalize_embeddings=False)


def stable_knn(query, k, reference, ref_includes_query=False):
    """PML's CustomKNN with an exact tie rule: by (distance, index), as ours ranks.
    torch.topk leaves the order of equal distances open."""
    if ref_includes_query:
        k = k + 1
    d = DISTANCE(query, reference)
    order = torch.sort(d, dim=1, stable=True).indices[:, :k]
    return return_results(d.gather(1, order), order, ref_includes_query)


def pml(knn_func, query, labels, reference=None, reference_labels=None) -> dict[str, float]:
    calc = AccuracyCalculator(include=tuple(PML_NAMES), knn_func=knn_func)
    got = calc.get_accuracy(query, labels, reference, reference_labels)
    return {ours: got[name] for name, ours in PML_NAMES.items()}


def ours(query, labels, reference=None, reference_labels=None) -> dict[str, float]:
    got = retrieval_metrics(query, labels, reference, reference_labels, ks=[1], chunk_size=37)
    return {name: got[name] for name in PML_NAMES.values()}


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("normalized", [False, True])
def test_self_retrieval_equals_pml(seed: int, normalized: bool) -> None:
    g = torch.Generator().manual_seed(seed)
    n, classes = 300, 1 + seed * 7  # from one class to 29 (some of a single sample)
    emb = torch.randn(n, 16, generator=g)
    if normalized:
        emb = torch.nn.functional.normalize(emb, dim=1)
    labels = torch.randint(classes + 1, (n,), generator=g)
    labels[0] = classes + 5  # a lone query: skipped by both
    expected = pml(CustomKNN(DISTANCE), emb, labels)
    assert ours(emb, labels) == pytest.approx(expected, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_query_gallery_equals_pml(seed: int) -> None:
    g = torch.Generator().manual_seed(100 + seed)
    q, r = torch.randn(120, 8, generator=g), torch.randn(200, 8, generator=g)
    ql, rl = torch.randint(12, (120,), generator=g), torch.randint(10, (200,), generator=g)
    expected = pml(CustomKNN(DISTANCE), q, ql, r, rl)
    assert ours(q, ql, r, rl) == pytest.approx(expected, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_ties_equal_pml_with_the_same_tie_rule(seed: int) -> None:
    # Points on a small integer grid: many exact duplicates and equal distances (exact in
    # float32), so the order of equal distances decides the ranks.
    g = torch.Generator().manual_seed(200 + seed)
    emb = torch.randint(3, (150, 3), generator=g).float()
    labels = torch.randint(6, (150,), generator=g)
    d = torch.cdist(emb, emb)
    assert (d.sort(1).values.diff(dim=1) == 0).float().mean() > 0.5  # ties indeed
    expected = pml(stable_knn, emb, labels)
    assert ours(emb, labels) == pytest.approx(expected, rel=1e-6, abs=1e-9)
    # A different tie order moves the figures: the tie rule matters here.
    flipped = pml(stable_knn, emb.flip(0), labels.flip(0))
    assert flipped != pytest.approx(expected, rel=1e-6, abs=1e-9)
