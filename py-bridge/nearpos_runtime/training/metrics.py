"""Retrieval and clustering metrics (definitions in docs/training.md), computed in chunks.

Memory is O(chunk_size x gallery size): 60,000 x 512 embeddings evaluate in bounded memory.
"""

from __future__ import annotations

import torch

from .data.base import DataError


def _check(emb: torch.Tensor, labels: torch.Tensor, name: str) -> None:
    if emb.ndim != 2:
        raise DataError(f"{name} must be N x d, got shape {list(emb.shape)}")
    if emb.shape[0] == 0:
        raise DataError(f"{name} is empty")
    if labels.ndim != 1 or labels.shape[0] != emb.shape[0]:
        raise DataError(
            f"{name} has {emb.shape[0]} rows but its labels have shape {list(labels.shape)}"
        )
    if not bool(torch.isfinite(emb).all()):
        row = int((~torch.isfinite(emb)).any(1).nonzero()[0, 0])
        raise DataError(f"{name} has NaN or Inf (first in row {row})")


def _topk_lex(d: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k smallest per row, ordered by (distance, index): exact tie rule."""
    kth = torch.topk(d, k, dim=1, largest=False, sorted=True).values[:, -1:]
    lt = d < kth
    eq = d == kth
    need = k - lt.sum(1, keepdim=True)
    sel = lt | eq
    crossing = (eq.sum(1, keepdim=True) > need).flatten().nonzero().flatten()
    if crossing.numel():
        e = eq[crossing]
        sel[crossing] = lt[crossing] | (e & (e.cumsum(1, dtype=torch.int32) <= need[crossing]))
    idx = sel.nonzero()[:, 1].view(d.shape[0], k)
    order = torch.sort(d.gather(1, idx), dim=1, stable=True).indices
    return idx.gather(1, order)


def retrieval_metrics(
    query: torch.Tensor,
    query_labels: torch.Tensor,
    gallery: torch.Tensor | None = None,
    gallery_labels: torch.Tensor | None = None,
    ks: list[int] | tuple[int, ...] = (1, 2, 4, 8),
    chunk_size: int = 1024,
    groups: torch.Tensor | None = None,
) -> dict[str, float]:
    """Recall@K, R-Precision and MAP@R; self-retrieval (self excluded) without a gallery.

    ``groups`` (one integer per query, e.g. the coarse class of each query when the labels
    are fine labels) adds ``recall@1/class=<g>``: R@1 over the queries of each group.
    """
    _check(query, query_labels, "embeddings")
    self_mode = gallery is None
    if self_mode:
        gallery, gallery_labels = query, query_labels
    else:
        assert gallery_labels is not None
        _check(gallery, gallery_labels, "gallery_embeddings")
        if gallery.shape[1] != query.shape[1]:
            raise DataError(
                f"gallery_embeddings have {gallery.shape[1]} columns, embeddings {query.shape[1]}"
            )
    q, g = query.float(), gallery.float()
    ql, gl = query_labels.long(), gallery_labels.long()
    n_ref = g.shape[0] - (1 if self_mode else 0)
    if n_ref < 1:
        raise DataError("retrieval needs at least two samples (or a non-empty gallery)")
    uniq, counts = torch.unique(gl, return_counts=True)
    pos = torch.searchsorted(uniq, ql).clamp_max(uniq.numel() - 1)
    r_all = torch.where(uniq[pos] == ql, counts[pos], torch.zeros_like(pos))
    if self_mode:
        r_all = r_all - 1
    g_sq = (g * g).sum(1)
    sums = {f"recall@{k}": 0.0 for k in ks} | {"r_precision": 0.0, "map@r": 0.0}
    scored = 0
    if groups is not None:
        group_ids, group_of = torch.unique(groups.long(), return_inverse=True)
        group_hits = torch.zeros(len(group_ids), dtype=torch.float64)
        group_count = torch.zeros(len(group_ids), dtype=torch.float64)
    for start in range(0, q.shape[0], chunk_size):
        qc, lc, rc = q[start : start + chunk_size], ql[start : start + chunk_size], r_all[
            start : start + chunk_size
        ]
        d = (qc * qc).sum(1, keepdim=True) + g_sq[None] - 2 * qc @ g.T
        d.clamp_(min=0)
        rows = torch.arange(qc.shape[0])
        if self_mode:
            d[rows, rows + start] = float("inf")
        ok = rc > 0
        if not bool(ok.any()):
            continue
        d, lc, rc = d[ok], lc[ok], rc[ok]
        kmax = min(n_ref, max(max(ks), int(rc.max())))
        rel = (gl[_topk_lex(d, kmax)] == lc[:, None]).float()
        if groups is not None:
            gc = group_of[start : start + chunk_size][ok]
            group_hits.index_add_(0, gc, rel[:, 0].double())
            group_count.index_add_(0, gc, torch.ones_like(gc, dtype=torch.float64))
        for k in ks:
            sums[f"recall@{k}"] += float(rel[:, : min(k, n_ref)].amax(1).sum())
        ranks = torch.arange(1, kmax + 1, dtype=torch.float32)
        within = ranks[None] <= rc[:, None]
        rf = rc.float()
        sums["r_precision"] += float(((rel * within).sum(1) / rf).sum())
        prec = rel.cumsum(1) / ranks[None]
        sums["map@r"] += float(((prec * rel * within).sum(1) / rf).sum())
        scored += int(ok.sum())
    out = {k: (v / scored if scored else float("nan")) for k, v in sums.items()}
    out["queries"] = float(scored)
    out["queries_without_match"] = float(q.shape[0] - scored)
    if groups is not None:
        for gid, hits, count in zip(group_ids.tolist(), group_hits, group_count, strict=True):
            out[f"recall@1/class={gid}"] = float(hits / count) if count > 0 else float("nan")
    return out


#: k-means restarts (k-means++ seeding each) behind NMI: with one start, an embedding that keeps
#: 10 modes in 5 classes is split a different way per seed and its NMI swings by 20+ points.
NMI_RESTARTS = 10
#: Above this many clusters one start is used: each restart costs as much as the whole
#: evaluation, and with thousands of clusters the split of any one matters little.
NMI_RESTARTS_MAX_K = 256


def nmi(embeddings: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> float:
    """k-means (k = number of classes, k-means++ with NMI_RESTARTS seeded restarts, the
    lowest-inertia result kept) then NMI with the labels."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score

    x = embeddings.detach().double().cpu().numpy()
    y = labels.cpu().numpy()
    k = int(len(set(y.tolist())))
    if k < 2:
        return 1.0 if len(y) else float("nan")
    restarts = NMI_RESTARTS if k <= NMI_RESTARTS_MAX_K else 1
    km = KMeans(n_clusters=min(k, len(y)), n_init=restarts, init="k-means++", random_state=seed)
    return float(normalized_mutual_info_score(y, km.fit_predict(x)))


#: Fine-label R@1 is broken down per coarse class (``recall@1/class=<c>``) up to this many
#: coarse classes: the per-class view of sub-cluster retention, kept small in every record.
MAX_CLASS_BREAKDOWN = 32


def evaluate_embeddings(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    fine_labels: torch.Tensor | None = None,
    gallery: torch.Tensor | None = None,
    gallery_labels: torch.Tensor | None = None,
    gallery_fine_labels: torch.Tensor | None = None,
    ks: list[int] | tuple[int, ...] = (1, 2, 4, 8),
    chunk_size: int = 1024,
    with_nmi: bool = True,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """``{"coarse": {...}, "fine": {...}}``; ``fine`` only when fine labels are given, with
    ``recall@1/class=<c>`` per coarse class c (up to MAX_CLASS_BREAKDOWN classes)."""
    if (gallery is None) != (gallery_labels is None):
        raise DataError("gallery_embeddings and gallery_labels go together")
    out = {
        "coarse": _one(
            embeddings, labels, gallery, gallery_labels, ks, chunk_size, with_nmi, seed
        )
    }
    if fine_labels is not None:
        if fine_labels.shape != labels.shape:
            raise DataError(
                f"fine_labels has shape {list(fine_labels.shape)}, labels {list(labels.shape)}"
            )
        if gallery is not None and gallery_fine_labels is None:
            raise DataError("fine_labels in query/gallery mode need gallery_fine_labels")
        groups = labels if torch.unique(labels).numel() <= MAX_CLASS_BREAKDOWN else None
        out["fine"] = _one(
            embeddings, fine_labels, gallery, gallery_fine_labels, ks, chunk_size, with_nmi, seed,
            groups,
        )
    return out


def _one(
    emb: torch.Tensor,
    labels: torch.Tensor,
    gallery: torch.Tensor | None,
    gallery_labels: torch.Tensor | None,
    ks: list[int] | tuple[int, ...],
    chunk_size: int,
    with_nmi: bool,
    seed: int,
    groups: torch.Tensor | None = None,
) -> dict[str, float]:
    m = retrieval_metrics(emb, labels, gallery, gallery_labels, ks, chunk_size, groups)
    if with_nmi:
        m["nmi"] = nmi(emb, labels, seed)
    return m


def pca_2d(x: torch.Tensor) -> torch.Tensor:
    """Deterministic 2-D PCA: float64 SVD, each axis signed so its largest loading is positive."""
    if x.ndim != 2 or x.shape[0] == 0:
        raise DataError(f"projection needs N x d embeddings, got shape {list(x.shape)}")
    xd = x.double()
    xc = xd - xd.mean(0, keepdim=True)
    _, _, vh = torch.linalg.svd(xc, full_matrices=False)
    axes = vh[:2]
    if axes.shape[0] < 2:
        axes = torch.cat([axes, torch.zeros(2 - axes.shape[0], x.shape[1], dtype=xd.dtype)])
    sign = torch.sign(axes.gather(1, axes.abs().argmax(1, keepdim=True)))
    sign[sign == 0] = 1
    return (xc @ (axes * sign).T).float()
