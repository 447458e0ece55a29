"""``mine`` and ``loss``: run a plugin's sampler (and a loss it wraps) on given embeddings.

Both estimate their tuple count and memory first (budget.py) and refuse what is over the
memory budget. Neither draws from torch's process-wide generator: a sampler config with
``seed: null`` gets a fresh random seed for the call, so a concurrent training's random
stream is never touched.
"""

from __future__ import annotations

import secrets
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from ..context import CallContext
from ..errors import InvalidParams
from ..plugins import LoadedPlugin, LossFields, given_options, plugin_index
from ..protocol.tensors import TensorField
from ..registry import method
from .budget import MAX_BUDGET, MIN_BUDGET, Batch, Strategy, check_call, resolve_budget

#: The ``loss`` params fields a refusal names.
LOSS_FIELDS = LossFields("params.loss", "params.loss_config", "params.config")
BUDGET_DESCRIPTION = (
    "memory budget of this call in bytes: a call whose estimated tuples take more is "
    "refused (null: the runtime's NEARPOS_MEMORY_BUDGET, default 2 GiB)"
)


class MineParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sampler: str = Field(description="plugin name, as listed in hello_reply.plugins")
    config: dict[str, Any] = Field(default_factory=dict, description="the sampler's config")
    embeddings: TensorField = Field(description="B x d floating-point embeddings")
    labels: TensorField = Field(description="B integer labels")
    ref_embeddings: TensorField | None = Field(None, description="M x d reference embeddings")
    ref_labels: TensorField | None = Field(None, description="M reference labels")
    memory_budget: int | None = Field(
        None, ge=MIN_BUDGET, le=MAX_BUDGET, description=BUDGET_DESCRIPTION
    )


class LossParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    loss: str = Field(description="loss name, e.g. 'triplet' or 'pml:ContrastiveLoss'")
    loss_config: dict[str, Any] = Field(default_factory=dict, description="loss kwargs")
    sampler: str = Field(description="plugin name, as listed in hello_reply.plugins")
    config: dict[str, Any] = Field(default_factory=dict, description="the sampler's config")
    embeddings: TensorField = Field(description="B x d floating-point embeddings")
    labels: TensorField = Field(description="B integer labels")
    memory_budget: int | None = Field(
        None, ge=MIN_BUDGET, le=MAX_BUDGET, description=BUDGET_DESCRIPTION
    )


def _check_pair(emb: torch.Tensor, labels: torch.Tensor, emb_name: str, lab_name: str) -> None:
    if emb.ndim != 2 or not emb.is_floating_point():
        raise InvalidParams(
            f"params.{emb_name}: expected a 2-D floating-point tensor, got "
            f"{tuple(emb.shape)} {str(emb.dtype).removeprefix('torch.')}"
        )
    if labels.ndim != 1 or labels.is_floating_point() or labels.dtype == torch.bool:
        raise InvalidParams(
            f"params.{lab_name}: expected a 1-D integer tensor, got "
            f"{tuple(labels.shape)} {str(labels.dtype).removeprefix('torch.')}"
        )
    if labels.shape[0] != emb.shape[0]:
        raise InvalidParams(
            f"params.{lab_name} has {labels.shape[0]} rows, params.{emb_name} has {emb.shape[0]}"
        )


def _diagnostics(obj: Any) -> dict[str, Any]:
    diag = getattr(obj, "last_diagnostics", None)
    return dict(diag) if isinstance(diag, dict) else {}


def own_seed(validated: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The options given, plus a fresh seed where the sampler would otherwise draw from
    torch's global generator (a ``seed`` option left null)."""
    config = given_options(validated, given)
    if "seed" in validated and validated["seed"] is None:
        config["seed"] = secrets.randbits(62)
    return config


def negatives_fixed(plugin: LoadedPlugin, config: dict[str, Any]) -> bool:
    """True when the sampler has no ``negatives`` option to change (or ignores it)."""
    return getattr(plugin.obj, "negatives", None) is not None or "negatives" not in config


def _check_budget(
    what: str,
    plugin: LoadedPlugin,
    config: dict[str, Any],
    memory_budget: int | None,
    batch: Batch,
    loss: str | None = None,
) -> None:
    """The budget check of ``mine`` and ``loss``: both name the same params fields."""
    check_call(
        what=what,
        batch=batch,
        strategy=Strategy.of(plugin.obj, config),
        budget=resolve_budget(memory_budget),
        budget_field="params.memory_budget",
        negatives_field="params.config.negatives",
        negatives_fixed=negatives_fixed(plugin, config),
        rows_field="params.embeddings",
        loss=loss,
    )


@method("mine", params=MineParams, description="Runs a sampler; returns its (a, p, n) indices.")
def mine(ctx: CallContext, params: MineParams) -> dict[str, Any]:
    plugin: LoadedPlugin = plugin_index().get(params.sampler)
    config = plugin.validate_config(params.config)
    _check_pair(params.embeddings, params.labels, "embeddings", "labels")
    ref: dict[str, torch.Tensor] = {}
    if (params.ref_embeddings is None) != (params.ref_labels is None):
        raise InvalidParams("params.ref_embeddings and params.ref_labels go together: give both")
    if params.ref_embeddings is not None and params.ref_labels is not None:
        _check_pair(params.ref_embeddings, params.ref_labels, "ref_embeddings", "ref_labels")
        if params.ref_embeddings.shape[1] != params.embeddings.shape[1]:
            raise InvalidParams(
                f"params.ref_embeddings has {params.ref_embeddings.shape[1]} columns, "
                f"params.embeddings has {params.embeddings.shape[1]}"
            )
        ref = {"ref_emb": params.ref_embeddings, "ref_labels": params.ref_labels}
    _check_budget(
        "mining", plugin, config, params.memory_budget,
        Batch.of(params.labels, params.embeddings.shape[1], params.ref_labels),
    )
    try:
        miner = plugin.obj.miner(own_seed(config, params.config))
    except (TypeError, ValueError) as exc:
        raise InvalidParams(f"params.config: {exc}") from None
    with torch.no_grad():
        indices = miner(params.embeddings, params.labels, **ref)
    if not isinstance(indices, (tuple, list)) or len(indices) != 3:
        raise TypeError(
            f"sampler {plugin.name!r} returned {type(indices).__name__} of length "
            f"{len(indices) if hasattr(indices, '__len__') else '?'}; expected (a, p, n)"
        )
    anchors, positives, negatives = (torch.as_tensor(t).to("cpu", torch.int64) for t in indices)
    return {
        "indices": {"anchors": anchors, "positives": positives, "negatives": negatives},
        "diagnostics": _diagnostics(miner),
    }


@method("loss", params=LossParams, description="Evaluates a loss wrapped by a sampler.")
def loss(ctx: CallContext, params: LossParams) -> dict[str, Any]:
    plugin = plugin_index().get(params.sampler)
    config = plugin.validate_config(params.config)
    _check_pair(params.embeddings, params.labels, "embeddings", "labels")
    wrapped = plugin.build_loss(
        params.loss, params.loss_config, own_seed(config, params.config), LOSS_FIELDS
    )
    _check_budget(
        f"the loss {params.loss!r}", plugin, config, params.memory_budget,
        Batch.of(params.labels, params.embeddings.shape[1]), loss=params.loss,
    )
    with torch.no_grad():
        value = wrapped(params.embeddings, params.labels)
    return {"value": float(value), "diagnostics": _diagnostics(wrapped)}
