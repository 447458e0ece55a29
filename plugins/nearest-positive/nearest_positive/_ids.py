"""Identities: which reference rows are an anchor's own copies."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class SelfMatches:
    """For each anchor, the reference rows sharing its id (CSR layout over `order`)."""

    start: torch.Tensor  # (B,) offset into order
    count: torch.Tensor  # (B,) number of same-id reference rows
    order: torch.Tensor  # (M,) reference rows sorted by id

    @classmethod
    def none(cls, n_anchors: int, device: torch.device) -> SelfMatches:
        z = torch.zeros(n_anchors, dtype=torch.long, device=device)
        return cls(z, z, torch.zeros(0, dtype=torch.long, device=device))

    @classmethod
    def from_ids(cls, ids: torch.Tensor, ref_ids: torch.Tensor) -> SelfMatches:
        # Sorting keeps this O((B + M) log M) instead of a dense B x M comparison.
        ids = ids.long()
        ref_ids = ref_ids.long().to(ids.device)
        sorted_ids, order = torch.sort(ref_ids, stable=True)
        lo = torch.searchsorted(sorted_ids, ids, side="left")
        hi = torch.searchsorted(sorted_ids, ids, side="right")
        return cls(lo, hi - lo, order)

    def pairs(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(local row, reference column) for anchors `rows` (local row = position in rows)."""
        c = self.count[rows]
        cmax = int(c.max()) if len(c) else 0
        if cmax == 0:
            e = torch.zeros(0, dtype=torch.long, device=rows.device)
            return e, e
        # One pass per copy number j (cmax is the most copies any anchor has, usually 1):
        # cheaper than repeat_interleave, which is slow on CPU even for short inputs.
        start = self.start[rows]
        locals_, cols = [], []
        for j in range(cmax):
            local = torch.nonzero(c > j).squeeze(1)
            locals_.append(local)
            cols.append(self.order[start[local] + j])
        if cmax == 1:
            return locals_[0], cols[0]
        local, col = torch.cat(locals_), torch.cat(cols)
        by_row = torch.argsort(local, stable=True)  # grouped by row, copies in order
        return local[by_row], col[by_row]


_HASH_SEED = 0x5EED


def content_ids(
    embeddings: torch.Tensor, labels: torch.Tensor, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """An int64 id per row from its exact bits and label: bitwise copies share an id.

    Used when a reference set holds detached copies of the batch (PML's CrossBatchMemory)
    and no ids are given. `dtype` is the common dtype both sides are cast to first. The
    hash is a random linear form over the raw bits (wrapping int64 arithmetic); distinct
    rows collide with negligible probability, and a collision only hides one candidate.
    """
    x = embeddings.detach()
    if dtype is not None:
        x = x.to(dtype)
    if x.dtype == torch.float64:
        bits = x.view(torch.int64)
    elif x.dtype == torch.float32:
        bits = x.view(torch.int32).long()
    else:
        bits = x.view(torch.int16).long()
    g = torch.Generator().manual_seed(_HASH_SEED)
    w = torch.randint(1, 2**62, (x.shape[1] + 1,), generator=g).to(x.device) | 1
    return (bits * w[:-1]).sum(1) + labels.long().to(x.device) * w[-1]
