"""`SamplerConfig`: the one set of options shared by every registered sampler."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SamplerConfig:
    """Options of every sampler (miner and loss wrapper). Unknown keys are an error."""

    negatives: str = field(
        default="all",
        metadata={
            "description": "negatives that complete each (anchor, positive): 'all', 'semihard' "
            "(closest negative farther than the positive), 'hardest' or 'distance-weighted' "
            "(Wu et al. 2017) (default 'all'; the 'semihard' sampler always uses 'semihard')"
        },
    )
    distance: str = field(
        default="euclidean",
        metadata={
            "description": "distance used to choose tuples: 'euclidean', 'squared_euclidean' "
            "or 'cosine' (1 - cosine similarity) (default 'euclidean')"
        },
    )
    normalize: bool = field(
        default=True,
        metadata={"description": "L2-normalise embeddings before choosing (default true)"},
    )
    tile_size: int | None = field(
        default=None,
        metadata={
            "description": "anchor rows per tile; extra memory is tile_size x reference rows "
            "(null = automatic, about 24 MiB of scratch) (default null)"
        },
    )
    on_missing: str = field(
        default="drop",
        metadata={
            "description": "anchors without a positive candidate: 'drop' (left out and "
            "counted) or 'error' (raise) (default 'drop')"
        },
    )
    seed: int | None = field(
        default=None,
        metadata={
            "description": "seed of the sampler's own random generator (random positives, "
            "distance-weighted negatives); null = torch's global generator (default null)"
        },
    )
    output: str = field(
        default="auto",
        metadata={
            "description": "tuple form: 'triplets' (a, p, n), 'pairs' (a1, p, a2, n) or "
            "'auto' (miner: triplets; wrapped loss: the form the loss consumes) "
            "(default 'auto')"
        },
    )
    memory_size: int = field(
        default=0,
        metadata={
            "description": "cross-batch memory: past (detached) embeddings kept as extra "
            "references, in rows; 0 = off (wrapped loss only) (default 0)"
        },
    )
    distributed: bool = field(
        default=False,
        metadata={
            "description": "gather embeddings, labels and ids from every torch.distributed "
            "rank so anchors choose from the global batch (wrapped loss only) "
            "(default false)"
        },
    )
    scale_by_world_size: bool = field(
        default=False,
        metadata={
            "description": "with distributed: multiply the loss by the world size, to cancel "
            "DistributedDataParallel's gradient averaging (default false)"
        },
    )
    warn_small_k: bool = field(
        default=True,
        metadata={
            "description": "warn when no class has more than 2 samples in a batch, where "
            "nearest-positive equals all-positives (default true)"
        },
    )

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SamplerConfig:
        if not isinstance(values, dict):
            raise TypeError(f"config must be a dict, got {type(values).__name__}")
        known = cls.field_names()
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(
                f"unknown sampler option(s) {', '.join(map(repr, unknown))}; "
                f"known options: {', '.join(known)}"
            )
        cfg = cls(**values)
        cfg.check()
        return cfg

    def check(self) -> None:
        """Type and range checks (choices are checked where they are used)."""
        for name in ("negatives", "distance", "on_missing", "output"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"option {name} must be a string, got {getattr(self, name)!r}")
        for name in ("normalize", "distributed", "scale_by_world_size", "warn_small_k"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"option {name} must be true or false, got {getattr(self, name)!r}")
        for name in ("tile_size", "seed"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise TypeError(f"option {name} must be an integer or null, got {v!r}")
        if self.tile_size is not None and self.tile_size < 1:
            raise ValueError(f"option tile_size must be >= 1, got {self.tile_size}")
        if isinstance(self.memory_size, bool) or not isinstance(self.memory_size, int):
            raise TypeError(f"option memory_size must be an integer, got {self.memory_size!r}")
        if self.memory_size < 0:
            raise ValueError(f"option memory_size must be >= 0, got {self.memory_size}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
