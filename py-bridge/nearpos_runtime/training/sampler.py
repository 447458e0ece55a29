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
        """Samples of a global batch (what one process trains on per step)."""
        return self.P * self.K

    @property
    def offset(self) -> int:
        """Position of this process's first sample in the global batch."""
        return 0

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


class ShardSampler:
    """This process's contiguous share of each global P x K batch of ``base``.

    Every process draws the same global batches (same seed), so together the shards are
    exactly the batches one process would train on; ``torch.tensor_split`` sizes them (the
    first ``P*K mod world`` shards hold one sample more). State and draw count are the base
    sampler's, so a checkpoint resumes every process alike.
    """

    def __init__(self, base: ClassBalancedSampler, rank: int, world: int) -> None:
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not in 0 .. {world - 1}")
        if base.batch_size < world:
            raise DataError(
                f"batch.classes x batch.per_class = {base.batch_size} samples per batch "
                f"cannot be shared among {world} processes (at least one each)"
            )
        self.base, self.rank, self.world = base, rank, world
        sizes = [len(t) for t in torch.arange(base.batch_size).tensor_split(world)]
        self._lo = sum(sizes[:rank])
        self._hi = self._lo + sizes[rank]

    @property
    def batch_size(self) -> int:
        return self.base.batch_size

    @property
    def offset(self) -> int:
        return self._lo

    @property
    def batches(self) -> int:
        return self.base.batches

    def next_batch(self) -> torch.Tensor:
        return self.base.next_batch()[self._lo : self._hi]

    def __iter__(self) -> Iterator[torch.Tensor]:
        while True:
            yield self.next_batch()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.base.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.base.load_state_dict(state)


def _some(items: list[int], n: int = 5) -> str:
    head = ", ".join(str(i) for i in items[:n])
    return head + (f", ... ({len(items)} in all)" if len(items) > n else "")


#: What the step loop draws its batches from: all of a batch, or this process's shard.
BatchSampler = ClassBalancedSampler | ShardSampler
