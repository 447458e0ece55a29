"""Every rank's random generator states, gathered for rank 0's checkpoint."""

from __future__ import annotations

import torch

from ..run_state import RunParts
from .group import all_gather_bytes


def gather_rng_states(parts: RunParts, backend: str) -> list[dict[str, torch.Tensor]]:
    """Each rank's global torch generator state (and its GPU's), in rank order; a collective
    every rank calls. The sampler and augmentation generators are the same on every rank and
    are saved once."""
    comm = parts.device if backend == "nccl" else torch.device("cpu")
    states = {"torch": torch.get_rng_state()}
    if parts.cuda:
        states["cuda"] = torch.cuda.get_rng_state(parts.device)
    gathered = {k: all_gather_bytes(v, comm) for k, v in states.items()}
    world = len(gathered["torch"])
    return [{k: v[r] for k, v in gathered.items()} for r in range(world)]
