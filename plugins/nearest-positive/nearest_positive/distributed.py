"""Gathering across torch.distributed ranks (variable sizes, gradient for the local shard)."""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_active() -> bool:
    return dist.is_available() and dist.is_initialized()


def _sizes(n: int, device: torch.device) -> list[int]:
    t = torch.tensor([n], dtype=torch.long, device=device)
    out = [torch.zeros_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(out, t)
    return [int(x) for x in out]


def gather(x: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """All ranks' `x` concatenated along dim 0 (rank order) and each rank's row count.

    The local shard is put back as the original tensor, so gradient flows to this rank's
    rows; other ranks' rows are constants here (each rank gets their gradient itself,
    because every rank computes the same global loss).
    """
    sizes = _sizes(x.shape[0], x.device)
    width = max(sizes)
    pad = x.detach()
    if x.shape[0] < width:
        pad = torch.cat([pad, pad.new_zeros((width - x.shape[0], *x.shape[1:]))])
    bufs = [torch.empty_like(pad) for _ in sizes]
    dist.all_gather(bufs, pad.contiguous())
    parts = [b[:s] for b, s in zip(bufs, sizes, strict=True)]
    parts[dist.get_rank()] = x
    return torch.cat(parts), sizes
