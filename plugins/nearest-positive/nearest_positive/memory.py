"""Cross-batch memory: a ring buffer of detached embeddings, labels and ids."""

from __future__ import annotations

import torch


class Memory:
    """Keeps the last `size` rows enqueued (oldest overwritten first)."""

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"memory_size must be >= 0, got {size}")
        self.size = size
        self.emb: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None
        self.ids: torch.Tensor | None = None
        self.filled = 0
        self.pos = 0

    def contents(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        if self.emb is None or self.filled == 0:
            return None
        assert self.labels is not None and self.ids is not None
        return self.emb[: self.filled], self.labels[: self.filled], self.ids[: self.filled]

    def enqueue(self, emb: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor) -> None:
        if self.size == 0:
            return
        emb, labels, ids = emb.detach(), labels.detach(), ids.detach()
        if len(emb) > self.size:  # only the newest rows can stay
            emb, labels, ids = emb[-self.size :], labels[-self.size :], ids[-self.size :]
        if self.emb is None or self.emb.shape[1] != emb.shape[1] or self.emb.device != emb.device:
            self.emb = emb.new_zeros((self.size, emb.shape[1]))
            self.labels = labels.new_zeros(self.size)
            self.ids = ids.new_zeros(self.size)
            self.filled = self.pos = 0
        assert self.labels is not None and self.ids is not None
        idx = (self.pos + torch.arange(len(emb), device=emb.device)) % self.size
        self.emb[idx] = emb.to(self.emb.dtype)
        self.labels[idx] = labels.to(self.labels.dtype)
        self.ids[idx] = ids.to(self.ids.dtype)
        self.pos = (self.pos + len(emb)) % self.size
        self.filled = min(self.size, self.filled + len(emb))

    def reset(self) -> None:
        self.emb = self.labels = self.ids = None
        self.filled = self.pos = 0
