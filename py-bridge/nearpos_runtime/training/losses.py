"""The trainer's loss: the train config's loss, wrapped by its sampler plugin.

A thin call into the plugin index's one loss factory (:meth:`LoadedPlugin.build_loss`), the
one the ``loss`` method uses, so a plugin's losses work alike in ``train`` and ``loss``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..errors import InvalidParams
from ..plugins import LossFields, given_options, plugin_index

#: The train params fields a refusal names.
TRAIN_FIELDS = LossFields("params.loss.name", "params.loss.config", "params.sampler.config")
#: An unknown or unusable loss or sampler: InvalidParams naming the field.
PluginError = InvalidParams


def build_loss(
    loss_name: str, loss_config: dict[str, Any], sampler_name: str, sampler_config: dict[str, Any]
) -> nn.Module:
    """``create_loss(loss_name, **loss_config)`` wrapped by the sampler plugin
    ``sampler_name`` with ``sampler_config`` (checked against the plugin's config schema)."""
    plugin = plugin_index().get(sampler_name, where="params.sampler.name")
    full = plugin.validate_config(sampler_config, "params.sampler.config")
    config = given_options(full, sampler_config)
    return plugin.build_loss(loss_name, loss_config, config, TRAIN_FIELDS)
