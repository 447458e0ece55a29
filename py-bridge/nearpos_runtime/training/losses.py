"""Builds the training loss: a loss by name, wrapped by a sampler plugin."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from torch import nn

GROUP = "nearpos.plugins"


class PluginError(ValueError):
    """An unknown or unusable loss or sampler, with the known names."""


def sampler_plugin(name: str) -> Any:
    eps = {ep.name: ep for ep in metadata.entry_points(group=GROUP)}
    if name not in eps:
        known = ", ".join(sorted(eps)) or "none installed"
        raise PluginError(f"sampler.name: unknown sampler {name!r}; known: {known}")
    return eps[name].load()


def build_loss(
    loss_name: str, loss_config: dict[str, Any], sampler_name: str, sampler_config: dict[str, Any]
) -> nn.Module:
    """``create_loss(loss_name, **loss_config)`` wrapped by the sampler plugin."""
    try:
        from nearest_positive.losses import create_loss, list_losses
    except ImportError as exc:
        raise PluginError(f"the nearest_positive package is not importable: {exc}") from exc
    known = list(list_losses())
    if loss_name not in known and not loss_name.startswith(("pml:", "torch:")):
        raise PluginError(f"loss.name: unknown loss {loss_name!r}; known: {', '.join(known)}")
    try:
        base = create_loss(loss_name, **loss_config)
    except TypeError as exc:
        raise PluginError(f"loss.config for {loss_name!r}: {exc}") from exc
    plugin = sampler_plugin(sampler_name)
    return plugin.wrap(base, dict(sampler_config))
