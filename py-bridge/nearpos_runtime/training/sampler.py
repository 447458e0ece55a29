"""Class-balanced P x K batch sampler, seeded, with a state for exact resume."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from .data.base import DataError


class ClassBalancedSampler:
    """Each batch: ``classes`` distinct labels, ``per_class`` samples of each.

    A class smaller than ``per_class`` is sampled with replacement (``small_class="replace"``,
    one warning naming the classes) or refused (``"error"``). A class with a single sample
    has no positive at all: refused (``singleton_class="error"``) or dropped with a warning
    (``"drop"``).
    """

    def __init__(
        self,
        labels: torch.Tensor,
        classes: int,
        per_class: int,
        seed: int,
        small_class: str = "replace",
        singleton_class: str = "error",
        warn: Callable[[str], None] | None = None,
    ) -> None:
        if labels.numel() == 0:
            raise DataError("the training set is empty")
        warn = warn or (lambda _m: None)
        uniq, counts = torch.unique(labels, return_counts=True)
        single = uniq[counts == 1].tolist()
        if single:
            names = _some(single)
            if singleton_class == "error":
                raise DataError(
                    f"{len(single)} class(es) have a single sample, so no positive: {names} "
                    "(set batch.singleton_class='drop' to drop them)"
                )
            warn(f"dropped {len(single)} class(es) with a single sample: {names}")
        keep = counts > 1
        self.classes_ = uniq[keep]
        self.members = [(labels == c).nonzero().flatten() for c in self.classes_.tolist()]
        if self.classes_.numel() < classes:
            raise DataError(
                f"batch.classes = {classes} but the training set has only "
                f"{self.classes_.numel()} usable classes"
            )
        pairs = zip(self.classes_.tolist(), self.members, strict=True)
        small = [c for c, m in pairs if m.numel() < per_class]
        if small:
            msg = (
                f"{len(small)} class(es) have fewer than batch.per_class = {per_class} "
                f"samples: {_some(small)}"
            )
            if small_class == "error":
                raise DataError(
                    msg + " (set batch.small_class='replace' to sample with replacement)"
                )
            warn(msg + "; they are sampled with replacement")
        self.P, self.K = classes, per_class
        self.generator = torch.Generator().manual_seed(seed)
        self.batches = 0

    @property
    def batch_size(self) -> int:
        return self.P * self.K

    def next_batch(self) -> torch.Tensor:
        g = self.generator
        chosen = torch.randperm(len(self.members), generator=g)[: self.P]
        parts = []
        for c in chosen.tolist():
            m = self.members[c]
            if m.numel() >= self.K:
                pick = torch.randperm(m.numel(), generator=g)[: self.K]
            else:
                pick = torch.randint(m.numel(), (self.K,), generator=g)
            parts.append(m[pick])
        self.batches += 1
        return torch.cat(parts)

    def __iter__(self) -> Iterator[torch.Tensor]:
        """Endless :meth:`next_batch` (the image DataLoader's batch source)."""
        while True:
            yield self.next_batch()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            "generator": self.generator.get_state(),
            "batches": torch.tensor(self.batches, dtype=torch.long),
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])
        self.batches = int(state["batches"])


def _some(items: list[int], n: int = 5) -> str:
    head = ", ".join(str(i) for i in items[:n])
    return head + (f", ... ({len(items)} in all)" if len(items) > n else "")
