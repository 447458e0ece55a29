"""Brute-force python-loop references the tests compare against."""

from __future__ import annotations

import math

import torch


def rows(x: torch.Tensor, normalize: bool) -> list[list[float]]:
    x = x.detach().double().cpu()  # same values the package sees, in float64
    if normalize:
        x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return x.tolist()


def dist(a: list[float], b: list[float], kind: str) -> float:
    if kind == "cosine":
        return 1.0 - sum(x * y for x, y in zip(a, b, strict=True))
    sq = sum((x - y) ** 2 for x, y in zip(a, b, strict=True))
    return math.sqrt(sq) if kind == "euclidean" else sq


def nearest(
    emb, labels, ref, ref_labels, ids, ref_ids, kind, normalize
) -> list[tuple[int | None, list[float]]]:
    """Per anchor: (index of the nearest valid candidate or None, distances to all)."""
    unit = normalize or kind == "cosine"
    E, R = rows(emb, unit), rows(ref, unit)
    y, yr = labels.tolist(), ref_labels.tolist()
    out = []
    for i, a in enumerate(E):
        d = [dist(a, r, kind) for r in R]
        best = None
        for j in range(len(R)):
            if yr[j] != y[i] or ref_ids[j] == ids[i]:
                continue
            if best is None or d[j] < d[best]:
                best = j
        out.append((best, d))
    return out
