"""`SamplerConfig`: the one declaration of the sampler options.

The plugin's JSON config (its schema travels in the runtime's hello), the keyword arguments
of `NearestPositive` and `NearestPositiveMiner`, and the core `Miner` all take these fields;
defaults, descriptions and checks live here only.
"""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ._validation import check_choice
from .distances import DISTANCES
from .negatives import NEGATIVE_STRATEGIES
from .selection import ON_MISSING

OUTPUTS: tuple[str, ...] = ("auto", "triplets", "pairs")
#: Marks a field only the loss wrapper uses (a miner does not take it).
WRAPPER_ONLY = {"wrapper_only": True}


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
            **WRAPPER_ONLY,
            "description": "cross-batch memory: past (detached) embeddings kept as extra "
            "references, in rows; 0 = off (wrapped loss only) (default 0)"
        },
    )
    distributed: bool = field(
        default=False,
        metadata={
            **WRAPPER_ONLY,
            "description": "gather embeddings, labels and ids from every torch.distributed "
            "rank so anchors choose from the global batch (wrapped loss only) "
            "(default false)"
        },
    )
    scale_by_world_size: bool = field(
        default=False,
        metadata={
            **WRAPPER_ONLY,
            "description": "with distributed: multiply the loss by the world size, to cancel "
            "DistributedDataParallel's gradient averaging (default false)"
        },
    )
    warn_small_k: bool = field(
        default=True,
        metadata={
            **WRAPPER_ONLY,
            "description": "warn when no class has more than 2 samples in a batch, where "
            "nearest-positive equals all-positives (default true)"
        },
    )

    @classmethod
    def field_names(cls, wrapper: bool = True) -> list[str]:
        """Every option; ``wrapper=False``: those a miner takes."""
        return [
            f.name for f in dataclasses.fields(cls)
            if wrapper or not f.metadata.get("wrapper_only")
        ]

    @classmethod
    def from_dict(
        cls, values: dict[str, Any], allowed: Iterable[str] | None = None
    ) -> SamplerConfig:
        """Checked options from a dict (JSON config or keyword arguments). A PML distance
        object is accepted as ``distance`` (:func:`pml_distance`). Unknown keys are a
        ValueError naming them and the ``allowed`` ones (default: every option)."""
        if not isinstance(values, dict):
            raise TypeError(f"config must be a dict, got {type(values).__name__}")
        known = list(allowed) if allowed is not None else cls.field_names()
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(
                f"unknown sampler option(s) {', '.join(map(repr, unknown))}; "
                f"known options: {', '.join(known)}"
            )
        values = dict(values)
        if "distance" in values and not isinstance(values["distance"], str):
            values["distance"], normalize = pml_distance(values["distance"])
            values["normalize"] = normalize
        cfg = cls(**values)
        cfg.check()
        return cfg

    def check(self) -> None:
        """Types, ranges and choices; ValueError or TypeError naming the option."""
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
        check_choice(self.negatives, "negatives", NEGATIVE_STRATEGIES)
        check_choice(self.distance, "distance", DISTANCES)
        check_choice(self.on_missing, "on_missing", ON_MISSING)
        check_choice(self.output, "output", OUTPUTS)
        if self.negatives == "distance-weighted" and not self.normalize:
            raise ValueError(
                "negatives='distance-weighted' needs embeddings on the unit sphere "
                "(normalize=True): its weights use the sphere's distance density"
            )

    def to_dict(self, wrapper: bool = True) -> dict[str, Any]:
        """The options as a dict; ``wrapper=False``: those a miner takes."""
        return {name: getattr(self, name) for name in self.field_names(wrapper)}


def pml_distance(distance: Any) -> tuple[str, bool]:
    """(distance, normalize) for a pytorch-metric-learning distance object: LpDistance(p=2)
    with power 1 is ``euclidean``, with power 2 ``squared_euclidean``, its
    ``normalize_embeddings`` is ``normalize``; CosineSimilarity() is ``cosine``."""
    try:
        from pytorch_metric_learning.distances import CosineSimilarity, LpDistance
    except ImportError:  # without PML, only names are possible
        CosineSimilarity = LpDistance = ()
    if isinstance(distance, CosineSimilarity):
        return "cosine", True
    if isinstance(distance, LpDistance) and distance.p == 2 and distance.power in (1, 2):
        kind = "euclidean" if distance.power == 1 else "squared_euclidean"
        return kind, bool(distance.normalize_embeddings)
    raise ValueError(
        f"distance {distance!r} is not supported: use 'euclidean', 'squared_euclidean', "
        "'cosine', LpDistance(p=2, power=1 or 2) or CosineSimilarity()"
    )


def options_doc(wrapper: bool = True) -> str:
    """The options as docstring lines (name, description with default), for the classes
    that take them as keyword arguments."""
    lines = ["", "    Options (keyword arguments, :class:`SamplerConfig`):"]
    for f in dataclasses.fields(SamplerConfig):
        if wrapper or not f.metadata.get("wrapper_only"):
            text = f"{f.name}: {f.metadata['description']}"
            lines.append(textwrap.fill(text, 88, initial_indent=" " * 8,
                                       subsequent_indent=" " * 12))
    return "\n".join(lines) + "\n"
