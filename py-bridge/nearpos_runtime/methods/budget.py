"""Tuple count and memory of a sampler's work, estimated before it runs.

``mine``, ``loss`` and ``train`` count the tuples their sampler will produce from the class
sizes alone (no distances needed) and refuse with InvalidParams what would take more memory
than the budget, naming the count, the estimate and options that would fit. The budget is
the call's ``memory_budget`` param, else the runtime's ``NEARPOS_MEMORY_BUDGET`` environment
variable, else :data:`DEFAULT_BUDGET` (docs/training.md, "Memory budget").

The counts follow the sampler options shared by the nearest-positive family: one positive
per anchor (``nearest``, ``random``, ``hardest``) or every positive (``all``); every
negative (``negatives="all"``) or one per (anchor, positive) row (any other strategy). A
plugin that says nothing about its strategies is counted as all positives x all negatives,
an upper bound.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from typing import Any

import torch

from ..errors import InvalidParams

KiB, MiB, GiB = 2**10, 2**20, 2**30
DEFAULT_BUDGET = 2 * GiB
BUDGET_ENV = "NEARPOS_MEMORY_BUDGET"
MIN_BUDGET = MiB
MAX_BUDGET = 2**50

#: Bytes per tuple, measured on CPU (peak RSS over the call, float32, tuples of 10^5 to 10^7):
#: mining keeps the int64 index columns, their per-tile parts and the copy sent back
#: (58 B measured, rounded up); a loss also gathers each tuple's rows of width d and keeps
#: them for the backward pass (20 B per dimension measured with gradients).
MINE_TUPLE_BYTES = 96
LOSS_TUPLE_BYTES_PER_DIM = 20
#: Score tiles of the sampler (its default keeps one tile near 24 MiB; a few live at once)
#: and the normalised copies of the embeddings.
TILE_BYTES = 24 * MiB
TILES_LIVE = 4
#: pytorch-metric-learning losses build full N x M distance and mask matrices.
PML_PAIRWISE_BYTES = 12

ONE_PER_ANCHOR = ("nearest", "random", "hardest")


def parse_size(text: str) -> int:
    """``"2147483648"``, ``"2GiB"``, ``"512 MiB"``, ``"1.5G"`` -> bytes."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(i?B)?\s*", text, re.IGNORECASE)
    if m is None:
        raise ValueError(f"not a size: {text!r} (bytes, or a number with KiB, MiB, GiB, TiB)")
    scale = {"": 1, "K": KiB, "M": MiB, "G": GiB, "T": 2**40}[m.group(2).upper()]
    return int(float(m.group(1)) * scale)


def runtime_budget() -> int:
    """The runtime's budget: ``$NEARPOS_MEMORY_BUDGET`` or :data:`DEFAULT_BUDGET`."""
    raw = os.environ.get(BUDGET_ENV, "").strip()
    if not raw:
        return DEFAULT_BUDGET
    try:
        value = parse_size(raw)
    except ValueError as exc:
        raise ValueError(f"{BUDGET_ENV}: {exc}") from None
    return max(MIN_BUDGET, value)


def resolve_budget(per_call: int | None) -> int:
    return runtime_budget() if per_call is None else per_call


def size_text(n: float) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


@dataclass(frozen=True)
class Strategy:
    """What the sampler does, as far as counting goes."""

    positives: str = "all"  # "all" or one of ONE_PER_ANCHOR
    negatives: str = "all"  # "all" or a one-per-row strategy
    output: str = "triplets"  # "triplets" or "pairs"
    tile_size: int | None = None
    memory_size: int = 0  # cross-batch memory rows (wrapped loss only)

    @classmethod
    def of(cls, plugin_obj: Any, config: dict[str, Any], output: str = "triplets") -> Strategy:
        """From a plugin and its validated config (unknown plugins: the upper bound)."""
        positives = getattr(plugin_obj, "positives", None) or config.get("positives", "all")
        negatives = getattr(plugin_obj, "negatives", None) or config.get("negatives", "all")
        form = config.get("output", "auto")
        tile = config.get("tile_size")
        memory = config.get("memory_size", 0)
        return cls(
            positives=positives if positives in ONE_PER_ANCHOR else "all",
            negatives=str(negatives),
            output=form if form in ("triplets", "pairs") else output,
            tile_size=tile if isinstance(tile, int) and not isinstance(tile, bool) else None,
            memory_size=memory if isinstance(memory, int) and memory > 0 else 0,
        )


@dataclass(frozen=True)
class Batch:
    """Class sizes of the anchors and of the reference rows they are compared with."""

    anchors: torch.Tensor  # (C,) anchors per class
    refs: torch.Tensor  # (C,) reference rows per class, same classes
    dim: int
    same: bool  # the references are the anchors (an anchor is not its own positive)

    @classmethod
    def of(
        cls, labels: torch.Tensor, dim: int, ref_labels: torch.Tensor | None = None
    ) -> Batch:
        if ref_labels is None:
            _, counts = torch.unique(labels, return_counts=True)
            return cls(counts.long(), counts.long(), dim, True)
        joined = torch.cat([labels.reshape(-1), ref_labels.reshape(-1)]).long()
        classes, inverse = torch.unique(joined, return_inverse=True)
        n = labels.numel()
        a = torch.bincount(inverse[:n], minlength=len(classes))
        r = torch.bincount(inverse[n:], minlength=len(classes))
        return cls(a, r, dim, False)

    @classmethod
    def balanced(cls, classes: int, per_class: int, dim: int) -> Batch:
        """A P x K training batch."""
        k = torch.full((classes,), per_class, dtype=torch.long)
        return cls(k, k.clone(), dim, True)

    @property
    def n(self) -> int:
        return int(self.anchors.sum())

    def scaled(self, rows: int) -> Batch:
        """About ``rows`` anchors in the same class proportions (references too if same)."""
        f = rows / max(self.n, 1)
        a = torch.floor(self.anchors.double() * f).long()
        return replace(self, anchors=a, refs=a.clone() if self.same else self.refs)


@dataclass(frozen=True)
class Estimate:
    tuples: int
    nbytes: int
    form: str  # "triplets" or "pairs"

    def text(self) -> str:
        return f"{self.tuples:,} {self.form}, about {size_text(self.nbytes)}"


def estimate(batch: Batch, s: Strategy, loss: str | None = None) -> Estimate:
    """Tuples the sampler produces for ``batch`` and the peak memory of producing them (and,
    with ``loss``, of computing that loss with gradients)."""
    a = batch.anchors.double()
    r = batch.refs.double() + (batch.refs.double() * s.memory_size / max(batch.n, 1))
    m = float(r.sum())
    cand = (r - 1).clamp_min(0) if batch.same else r
    has = (cand > 0).double()
    neg = m - r
    rows = a * has if s.positives in ONE_PER_ANCHOR else a * cand
    if s.negatives == "all":
        if s.output == "pairs":
            tuples = rows.sum() + (a * neg).sum()
        else:
            tuples = (rows * neg).sum()
    else:
        tuples = rows.sum() * (2 if s.output == "pairs" else 1)
    t = int(tuples)
    n = float(a.sum())
    per_tuple = MINE_TUPLE_BYTES
    extra = 0.0
    if loss is not None:
        per_tuple += LOSS_TUPLE_BYTES_PER_DIM * batch.dim
        if loss.startswith("pml:"):
            extra += PML_PAIRWISE_BYTES * n * m
    # rows per score tile as the sampler sizes them: a float score and a mask byte or two
    auto_rows = max(32.0, TILE_BYTES // max(m * 6, 1.0))
    tile_rows = min(n, auto_rows if s.tile_size is None else float(s.tile_size))
    tiles = TILES_LIVE * tile_rows * m * 6
    copies = 2 * (n + m) * batch.dim * 4
    return Estimate(t, int(t * per_tuple + extra + tiles + copies), s.output)


def largest_fitting(fits: Any, low: int, high: int) -> int | None:
    """Largest integer v in [low, high] with fits(v) (monotone); None if not even low."""
    if not fits(low):
        return None
    while low < high:
        mid = (low + high + 1) // 2
        if fits(mid):
            low = mid
        else:
            high = mid - 1
    return low


@dataclass
class Refusal:
    """Builds the InvalidParams message: what was estimated, and what would fit."""

    what: str  # e.g. "mining", "the loss", "a training step's loss"
    estimate: Estimate
    budget: int
    budget_field: str
    fits: list[str]

    def error(self) -> InvalidParams:
        head = (
            f"{self.what} would produce {self.estimate.text()}: over the memory budget of "
            f"{size_text(self.budget)} ({self.budget_field}; default ${BUDGET_ENV}, else "
            f"{size_text(DEFAULT_BUDGET)})"
        )
        if self.fits:
            return InvalidParams(f"{head}; would fit: {'; or '.join(self.fits)}")
        return InvalidParams(f"{head}; raise {self.budget_field}")


def other_negatives(
    batch: Batch, s: Strategy, loss: str | None, budget: int, field: str, fixed: bool
) -> str | None:
    """``field='semihard'`` (or another one-per-row strategy) when it fits."""
    if s.negatives != "all" or fixed:
        return None
    one = estimate(batch, replace(s, negatives="semihard"), loss)
    if one.nbytes > budget:
        return None
    return f"{field}='semihard', 'hardest' or 'distance-weighted' (then {one.text()})"


def check_call(
    *,
    what: str,
    batch: Batch,
    strategy: Strategy,
    budget: int,
    budget_field: str,
    negatives_field: str,
    negatives_fixed: bool,
    rows_field: str,
    loss: str | None = None,
) -> Estimate:
    """Estimate a mine/loss call; InvalidParams when over ``budget``."""
    est = estimate(batch, strategy, loss)
    if est.nbytes <= budget:
        return est
    fits = []
    alt = other_negatives(batch, strategy, loss, budget, negatives_field, negatives_fixed)
    if alt:
        fits.append(alt)
    rows = largest_fitting(
        lambda k: estimate(batch.scaled(k), strategy, loss).nbytes <= budget, 2, batch.n
    )
    if rows is not None:
        fits.append(f"at most {rows:,} rows of {rows_field} per call")
    raise Refusal(what, est, budget, budget_field, fits).error()


def check_training(
    *,
    classes: int,
    per_class: int,
    dim: int,
    strategy: Strategy,
    loss: str,
    budget: int,
    negatives_fixed: bool,
) -> Estimate:
    """Estimate one training step's loss (a P x K batch); InvalidParams when over budget."""
    batch = Batch.balanced(classes, per_class, dim)
    est = estimate(batch, strategy, loss)
    if est.nbytes <= budget:
        return est

    def ok(b: Batch) -> bool:
        return estimate(b, strategy, loss).nbytes <= budget

    fits = []
    alt = other_negatives(
        batch, strategy, loss, budget, "params.sampler.config.negatives", negatives_fixed
    )
    if alt:
        fits.append(alt)
    p = largest_fitting(lambda v: ok(Batch.balanced(v, per_class, dim)), 2, classes)
    if p is not None:
        fits.append(f"params.batch.classes <= {p}")
    k = largest_fitting(lambda v: ok(Batch.balanced(classes, v, dim)), 2, per_class)
    if k is not None:
        fits.append(f"params.batch.per_class <= {k}")
    what = f"a training step's loss ({classes} x {per_class} batch)"
    raise Refusal(what, est, budget, "params.memory_budget", fits).error()
