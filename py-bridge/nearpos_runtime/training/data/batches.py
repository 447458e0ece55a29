"""Sources of training batches: what the step loop draws its P x K batches from."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import torch

if TYPE_CHECKING:
    from ..sampler import BatchSampler
    from .base import Samples


class TrainBatches(Protocol):
    """Batches in the sampler's order: ``next()`` gives (sample indices, inputs).

    ``sampler_state()`` is the sampler's state as of the last batch handed out (a source
    that draws ahead keeps it), which a checkpoint stores for an exact resume. ``close()``
    ends what the source started (worker processes)."""

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]: ...

    def sampler_state(self) -> dict[str, torch.Tensor]: ...

    def close(self) -> None: ...


class InlineBatches:
    """Draw and build each batch on the calling thread when asked (in-memory samples)."""

    def __init__(
        self, samples: Samples, sampler: BatchSampler, generator: torch.Generator
    ) -> None:
        self.samples, self.sampler, self.generator = samples, sampler, generator

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.sampler.next_batch()
        return idx, self.samples.inputs(idx, train=True, generator=self.generator)

    def sampler_state(self) -> dict[str, torch.Tensor]:
        return self.sampler.state_dict()

    def close(self) -> None:
        pass
