"""Entry-point objects (group ``nearpos.plugins``): one class, one instance per sampler."""

from __future__ import annotations

import dataclasses
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version
from typing import Any

from torch import nn

from .config import SamplerConfig
from .mining import Miner
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
        """The checked options, with this sampler's fixed negatives."""
        explicit = isinstance(config, dict) and "negatives" in config
        if config is None:
            config = SamplerConfig()
        elif isinstance(config, dict):
            config = SamplerConfig.from_dict(config)
        if self.negatives is None:
            return config
        # "all" is the shared default, so a full SamplerConfig may carry it
        if config.negatives != self.negatives and (explicit or config.negatives != "all"):
            raise ValueError(
                f"sampler {self.name!r} always uses negatives={self.negatives!r}; "
                f"got negatives={config.negatives!r}"
            )
        return dataclasses.replace(config, negatives=self.negatives)

    def miner(self, config: dict[str, Any] | SamplerConfig | None = None) -> Any:
        """A miner ``miner(embeddings, labels, ref_emb=None, ref_labels=None)`` returning
        ``(a, p, n)`` (or pairs with ``output="pairs"``); a PML BaseMiner when PML is
        installed, else a plain callable with the same behaviour. The wrapper-only
        options are accepted and have no effect."""
        cfg = self._config(config)
        try:
            from .nearest_positive_miner import NearestPositiveMiner
        except ImportError:
            return Miner(cfg, self.positives)
        return NearestPositiveMiner(positives=self.positives, **cfg.to_dict(wrapper=False))

    def wrap(
        self, loss: nn.Module, config: dict[str, Any] | SamplerConfig | None = None
    ) -> NearestPositive:
        """``loss`` driven by this sampler's tuples (ValueError for unsupported losses)."""
        return NearestPositive(loss, self.positives, **self._config(config).to_dict())


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
