"""Entry-point objects (group ``nearpos.plugins``): one class, one instance per sampler."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version
from typing import Any

from torch import nn

from .config import SamplerConfig
from .mining import Miner, MiningOptions
from .nearest_positive import NearestPositive
from .pml_baseline import PMLMinerPlugin

try:
    __version__ = _dist_version("nearest-positive")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.1.0"


class SamplerPlugin:
    """A sampler registered by name: ``miner(config)`` and ``wrap(loss, config)``.

    ``positives`` is the positive strategy; ``negatives`` fixes the negative strategy when
    the sampler is defined by it (``semihard``), else the config's ``negatives`` applies.
    """

    config_class = SamplerConfig

    def __init__(
        self, name: str, description: str, positives: str, negatives: str | None = None
    ) -> None:
        self.name = name
        self.description = description
        self.positives = positives
        self.negatives = negatives
        self.version = __version__

    def __repr__(self) -> str:
        return f"SamplerPlugin({self.name!r})"

    def _config(self, config: dict[str, Any] | SamplerConfig | None) -> SamplerConfig:
        if config is None:
            values: dict[str, Any] = {}
        elif isinstance(config, SamplerConfig):
            values = config.to_dict()
        else:
            values = dict(config)
        if self.negatives is not None:
            given = values.get("negatives", self.negatives)
            # "all" is the shared default, so a full SamplerConfig may carry it
            explicit = isinstance(config, dict) and "negatives" in config
            if given != self.negatives and (explicit or given != "all"):
                raise ValueError(
                    f"sampler {self.name!r} always uses negatives={self.negatives!r}; "
                    f"got negatives={given!r}"
                )
            values["negatives"] = self.negatives
        return SamplerConfig.from_dict(values)

    def miner(self, config: dict[str, Any] | SamplerConfig | None = None) -> Any:
        """A miner ``miner(embeddings, labels, ref_emb=None, ref_labels=None)`` returning
        ``(a, p, n)`` (or pairs with ``output="pairs"``); a PML BaseMiner when PML is
        installed, else a plain callable with the same behaviour."""
        cfg = self._config(config)
        opts = dict(
            positives=self.positives, negatives=cfg.negatives,
            output="triplets" if cfg.output == "auto" else cfg.output,
            distance=cfg.distance, normalize=cfg.normalize, tile_size=cfg.tile_size,
            on_missing=cfg.on_missing, seed=cfg.seed,
        )
        try:
            from .nearest_positive_miner import NearestPositiveMiner
        except ImportError:
            return Miner(MiningOptions(**opts))
        return NearestPositiveMiner(**opts)

    def wrap(
        self, loss: nn.Module, config: dict[str, Any] | SamplerConfig | None = None
    ) -> NearestPositive:
        """``loss`` driven by this sampler's tuples (ValueError for unsupported losses)."""
        cfg = self._config(config)
        return NearestPositive(
            loss, positives=self.positives, negatives=cfg.negatives, distance=cfg.distance,
            normalize=cfg.normalize, tile_size=cfg.tile_size, on_missing=cfg.on_missing,
            seed=cfg.seed, output=cfg.output, memory_size=cfg.memory_size,
            distributed=cfg.distributed, scale_by_world_size=cfg.scale_by_world_size,
            warn_small_k=cfg.warn_small_k,
        )


plugin = SamplerPlugin(
    "nearest-positive",
    "nearest same-class sample as each anchor's positive (Levi et al., ICCV 2021)",
    positives="nearest",
)
all_positives = SamplerPlugin(
    "all-positives", "every same-class pair: the loss's own default tuples", positives="all"
)
random_positive = SamplerPlugin(
    "random-positive", "one random same-class sample per anchor (control)", positives="random"
)
hardest_positive = SamplerPlugin(
    "hardest-positive", "farthest same-class sample per anchor (batch-hard style control)",
    positives="hardest",
)
semihard = SamplerPlugin(
    "semihard", "every same-class pair with semi-hard negatives (the usual recipe)",
    positives="all", negatives="semihard",
)

#: The loss with pytorch-metric-learning's own miner: the usual recipe as a baseline.
pml_miner = PMLMinerPlugin(__version__)

PLUGINS: tuple[SamplerPlugin | PMLMinerPlugin, ...] = (
    plugin, all_positives, random_positive, hardest_positive, semihard, pml_miner,
)
