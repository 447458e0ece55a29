"""The ``pml-miner`` sampler: a loss with pytorch-metric-learning's own miner, unchanged.

This is the usual recipe the method is compared with (e.g. TripletMarginLoss with
TripletMarginMiner(type_of_triplets="semihard"), MarginLoss with DistanceWeightedMiner),
run through the same plugin contract as the samplers of this package so that a benchmark
changes one thing only: where the tuples come from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ._validation import check_embeddings, check_index_vector
from .losses import list_losses
from .losses.support import classify
from .mining import empty_diagnostics


@dataclass
class PMLMinerConfig:
    """Options of the ``pml-miner`` sampler. Unknown keys are an error."""

    miner: str | None = field(
        default=None,
        metadata={
            "description": "class name of a pytorch-metric-learning miner "
            "(pytorch_metric_learning.miners), e.g. 'TripletMarginMiner', "
            "'DistanceWeightedMiner', 'MultiSimilarityMiner'; null = no miner: the loss "
            "uses every valid pair or triplet of the batch, its own default (default null)"
        },
    )
    miner_config: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "description": "keyword arguments of the miner's constructor, e.g. "
            '{"type_of_triplets": "semihard", "margin": 0.2} (default {})'
        },
    )


def _pml_miners() -> Any:
    try:
        import pytorch_metric_learning.miners as miners
    except ImportError as exc:
        raise ImportError(
            "the pml-miner sampler needs pytorch-metric-learning: "
            "pip install 'nearest-positive[pml]'"
        ) from exc
    return miners


def build_pml_miner(name: str, config: dict[str, Any]) -> nn.Module:
    """A PML miner by class name; ValueError naming the known miners for an unknown one."""
    miners = _pml_miners()
    known = sorted(
        n for n in dir(miners)
        if n.endswith("Miner") and n != "BaseMiner" and isinstance(getattr(miners, n), type)
    )
    if name not in known:
        raise ValueError(
            f"miner: unknown pytorch-metric-learning miner {name!r}; known: {', '.join(known)}"
        )
    try:
        return getattr(miners, name)(**config)
    except TypeError as exc:
        raise ValueError(f"miner_config for {name}: {exc}") from None


class AllTriplets(nn.Module):
    """Every valid (a, p, n) of a batch, by PML's own function: a PML loss's default tuples."""

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_emb: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

        return tuple(lmu.get_all_triplets_indices(labels, ref_labels))


class DiagnosedMiner(nn.Module):
    """A PML miner that also sets ``last_diagnostics`` after each call (the plugin contract).

    Called like the miner itself: ``miner(embeddings, labels, ref_emb=None, ref_labels=None)``;
    ``.pml`` is the PML miner.
    """

    def __init__(self, pml: nn.Module) -> None:
        super().__init__()
        self.pml = pml
        self.last_diagnostics: dict[str, float | int] = empty_diagnostics()

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_emb: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        tup = self.pml(embeddings, labels, ref_emb, ref_labels)
        ref = embeddings if ref_emb is None else ref_emb
        self.last_diagnostics = tuple_diagnostics(embeddings, ref, tup)
        return tup


class MinerLoss(nn.Module):
    """``loss(embeddings, labels, miner(embeddings, labels))``: PML's own recipe.

    ``last_diagnostics`` has the keys of the other samplers: anchors, tuples and mean
    anchor-positive / anchor-negative distances of the tuples the loss received
    (Euclidean on L2-normalised embeddings). Without a miner the loss gets no tuples and
    uses every valid pair or triplet, as PML does; the diagnostics count those.
    """

    def __init__(self, loss: nn.Module, miner: DiagnosedMiner | None) -> None:
        super().__init__()
        family, form = classify(loss)
        if family == "torch":
            raise ValueError(
                f"{type(loss).__name__} takes (anchor, positive, negative) tensors, not "
                "indices_tuple: the pml-miner sampler drives pytorch-metric-learning losses "
                "and the losses of nearest_positive.losses"
            )
        self.loss = loss
        self.miner = miner
        self.form = form
        self.last_diagnostics: dict[str, float | int] = empty_diagnostics()

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_embeddings(embeddings, "embeddings")
        check_index_vector(labels, "labels", embeddings.shape[0], "embeddings")
        labels = labels.to(embeddings.device)
        if self.miner is not None:
            tup = self.miner(embeddings, labels)
            self.last_diagnostics = dict(self.miner.last_diagnostics)
            return self.loss(embeddings, labels, tup)
        value = self.loss(embeddings, labels)
        with torch.no_grad():
            self.last_diagnostics = default_diagnostics(embeddings, labels, self.form)
        return value


def default_diagnostics(
    emb: torch.Tensor, labels: torch.Tensor, form: str
) -> dict[str, float | int]:
    """Diagnostics of every valid pair or triplet of a batch (a loss's default tuples),
    from the distance matrix: the triplets are counted, never listed."""
    x = nn.functional.normalize(emb.detach().float(), dim=1)
    d = torch.cdist(x, x)
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    same.fill_diagonal_(False)
    diff = labels.unsqueeze(0) != labels.unsqueeze(1)
    n_pos, n_neg = same.sum(1).double(), diff.sum(1).double()
    ap_sum, an_sum = (d * same).sum(1).double(), (d * diff).sum(1).double()
    if form == "pairs":
        tuples = float(n_pos.sum() + n_neg.sum())
        anchors = int((n_pos > 0).sum())
        ap_w, an_w = torch.ones_like(n_pos), torch.ones_like(n_neg)
    else:  # each (a, p) with every negative of a
        tuples = float((n_pos * n_neg).sum())
        anchors = int(((n_pos > 0) & (n_neg > 0)).sum())
        ap_w, an_w = n_neg, n_pos
    ap_n, an_n = float((ap_w * n_pos).sum()), float((an_w * n_neg).sum())
    return {
        "anchors": anchors,
        "anchors_without_positive": int((n_pos == 0).sum()),
        "tuples": int(tuples),
        "mean_ap_distance": float((ap_w * ap_sum).sum()) / ap_n if ap_n else float("nan"),
        "mean_an_distance": float((an_w * an_sum).sum()) / an_n if an_n else float("nan"),
    }


def tuple_diagnostics(
    emb: torch.Tensor, ref: torch.Tensor, tup: tuple[torch.Tensor, ...]
) -> dict[str, float | int]:
    """Counts and mean distances (unit sphere) of an indices_tuple, without gradient."""
    with torch.no_grad():
        x = nn.functional.normalize(emb.detach().float(), dim=1)
        r = x if ref is emb else nn.functional.normalize(ref.detach().float(), dim=1)
        if len(tup) == 3:
            a, p, n = tup
            a2, tuples = a, len(a)
        else:
            a, p, a2, n = tup
            tuples = len(a) + len(a2)
        ap = (x[a] - r[p]).norm(dim=1)
        an = (x[a2] - r[n]).norm(dim=1)
        return {
            "anchors": int(torch.unique(a).numel()),
            "anchors_without_positive": 0,
            "tuples": int(tuples),
            "mean_ap_distance": float(ap.mean()) if ap.numel() else float("nan"),
            "mean_an_distance": float(an.mean()) if an.numel() else float("nan"),
        }


class PMLMinerPlugin:
    """Entry-point object of the ``pml-miner`` sampler (see docs/plugins.md)."""

    config_class = PMLMinerConfig

    def __init__(self, version: str) -> None:
        self.name = "pml-miner"
        self.description = (
            "pytorch-metric-learning's own miner (or none: every pair/triplet), "
            "the loss's usual recipe as the baseline"
        )
        self.version = version

    def __repr__(self) -> str:
        return "PMLMinerPlugin('pml-miner')"

    def list_losses(self) -> list[str]:
        """The package's loss names that read ``indices_tuple``: not torch's triplet losses,
        which :class:`MinerLoss` refuses."""
        return [n for n in list_losses() if not n.startswith("torch:")]

    def _config(self, config: dict[str, Any] | PMLMinerConfig | None) -> PMLMinerConfig:
        if config is None:
            return PMLMinerConfig()
        if isinstance(config, PMLMinerConfig):
            return config
        unknown = sorted(set(config) - {"miner", "miner_config"})
        if unknown:
            raise ValueError(
                f"unknown sampler option(s) {', '.join(map(repr, unknown))} for 'pml-miner'; "
                "known options: miner, miner_config"
            )
        cfg = PMLMinerConfig(**config)
        if cfg.miner is not None and not isinstance(cfg.miner, str):
            raise TypeError(f"option miner must be a string or null, got {cfg.miner!r}")
        if not isinstance(cfg.miner_config, dict):
            raise TypeError(f"option miner_config must be an object, got {cfg.miner_config!r}")
        return cfg

    def miner(self, config: dict[str, Any] | PMLMinerConfig | None = None) -> DiagnosedMiner:
        """The PML miner named by ``miner``; without one, every valid triplet (a, p, n),
        what a PML triplet loss uses when it is given no tuples."""
        cfg = self._config(config)
        if cfg.miner is None:
            if cfg.miner_config:
                raise ValueError("option miner_config needs option miner (a miner class name)")
            return DiagnosedMiner(AllTriplets())
        return DiagnosedMiner(build_pml_miner(cfg.miner, cfg.miner_config))

    def wrap(
        self, loss: nn.Module, config: dict[str, Any] | PMLMinerConfig | None = None
    ) -> MinerLoss:
        cfg = self._config(config)
        if cfg.miner is None and cfg.miner_config:
            raise ValueError("option miner_config needs option miner (a miner class name)")
        miner = None if cfg.miner is None else self.miner(cfg)
        return MinerLoss(loss, miner)
