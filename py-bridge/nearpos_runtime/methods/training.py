"""Runtime methods train, embed, evaluate, checkpoint_save, checkpoint_load (docs/training.md)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from ..context import CallContext
from ..errors import InvalidParams
from ..plugins import plugin_index
from ..registry import method
from ..training.config import (
    CheckpointLoadParams,
    CheckpointSaveParams,
    EmbedParams,
    EvaluateParams,
    TrainConfig,
)
from ..training.data import DataError, load_data
from ..training.distributed.runner import run_distributed
from ..training.losses import build_loss
from ..training.metrics import evaluate_embeddings, pca_2d
from ..training.models import ModelError, build_model
from ..training.trainer import (
    CHECKPOINT_FORMAT,
    ConfigError,
    TrainedModel,
    Trainer,
    embed_samples,
    load_checkpoint,
    resolve_device,
    save_atomic,
)
from .budget import Strategy, check_training, resolve_budget
from .mining import negatives_fixed

MODEL_KIND = "model"
F = TypeVar("F", bound=Callable[..., Any])


def config_mistakes(func: F) -> F:
    """Data, model and checkpoint errors that the params cause end the call as InvalidParams
    (code invalid_params, the message naming the field), like schema errors do."""

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (DataError, ModelError, ConfigError) as exc:
            raise InvalidParams(str(exc)) from exc

    return run  # type: ignore[return-value]


def _check_plugins(cfg: TrainConfig) -> None:
    """Unknown sampler or loss, bad sampler or loss config, a batch whose tuples would not
    fit the memory budget: InvalidParams naming the field, before any work. The loss is
    built by the trainer's own call (the ``loss`` method's factory too)."""
    build_loss(cfg.loss.name, cfg.loss.config, cfg.sampler.name, cfg.sampler.config)
    plugin = plugin_index().get(cfg.sampler.name, where="params.sampler.name")
    full = plugin.validate_config(cfg.sampler.config, "params.sampler.config")
    check_training(
        classes=cfg.batch.classes,
        per_class=cfg.batch.per_class,
        dim=cfg.model.embedding_dim,
        strategy=Strategy.of(plugin.obj, full),
        loss=cfg.loss.name,
        budget=resolve_budget(cfg.memory_budget),
        negatives_fixed=negatives_fixed(plugin, full),
    )


@method(
    "train",
    params=TrainConfig,
    description="Trains an embedding model; emits queued/step/epoch/eval/checkpoint events. "
    "Trainings run one at a time, in arrival order.",
)
@config_mistakes
def train(ctx: CallContext, params: TrainConfig) -> dict[str, Any]:
    _check_plugins(params)
    if params.distributed is not None and params.distributed.launches:
        result = run_distributed(params, on_event=ctx.emit, cancel=ctx.check_cancelled)
    else:
        result = Trainer(params, on_event=ctx.emit, cancel=ctx.check_cancelled).run()
    handle = ctx.objects.put(result.model, MODEL_KIND)
    return {
        "model": handle,
        "metrics": result.metrics,
        "history": result.history,
        "losses": result.losses,
        "steps": result.steps,
        "elapsed_s": result.elapsed_s,
        "samples_per_s": result.samples_per_s,
        "checkpoint": result.checkpoint,
        "device": result.device,
        "best_step": result.best_step,
        "best_val_metrics": result.best_val_metrics,
        "queued_s": result.queued_s,
        "world_size": result.world_size,
    }


def _model(ctx: CallContext, handle: str) -> TrainedModel:
    return ctx.objects.get(handle, MODEL_KIND)


def _embed(ctx: CallContext, handle: str, data: Any, split: str, batch_size: int):
    model = _model(ctx, handle)
    samples = load_data(data).split(split)
    if len(samples) == 0:
        raise DataError(f"split '{split}' is empty")
    emb = embed_samples(model.module, samples, model.device, batch_size)
    return emb, samples


@method("embed", params=EmbedParams, description="Embeds a data split with a model.")
@config_mistakes
def embed(ctx: CallContext, params: EmbedParams) -> dict[str, Any]:
    emb, samples = _embed(ctx, params.model, params.data, params.split, params.batch_size)
    out: dict[str, Any] = {"embeddings": emb, "labels": samples.labels}
    if samples.fine_labels is not None:
        out["fine_labels"] = samples.fine_labels
    return out


@method(
    "evaluate",
    params=EvaluateParams,
    description="Retrieval metrics (recall@K, MAP@R, R-Precision, NMI).",
)
@config_mistakes
def evaluate(ctx: CallContext, params: EvaluateParams) -> dict[str, Any]:
    gallery = gallery_labels = gallery_fine = None
    if params.model is not None:
        bundle = load_data(params.data)
        model = _model(ctx, params.model)
        if bundle.query is not None and bundle.gallery is not None and params.split == "test":
            q, g = bundle.query, bundle.gallery
            emb = embed_samples(model.module, q, model.device, params.batch_size)
            gallery = embed_samples(model.module, g, model.device, params.batch_size)
            labels, fine = q.labels, q.fine_labels
            gallery_labels, gallery_fine = g.labels, g.fine_labels
        else:
            s = bundle.split(params.split)
            emb = embed_samples(model.module, s, model.device, params.batch_size)
            labels, fine = s.labels, s.fine_labels
    else:
        emb, labels, fine = params.embeddings, params.labels, params.fine_labels
        gallery, gallery_labels = params.gallery_embeddings, params.gallery_labels
        gallery_fine = params.gallery_fine_labels
        for name, t in (
            ("labels", labels),
            ("fine_labels", fine),
            ("gallery_labels", gallery_labels),
        ):
            if t is not None and (t.is_floating_point() or t.dtype == torch.bool):
                raise DataError(f"{name} must be integers, got {t.dtype}")
    metrics = evaluate_embeddings(
        emb.float(),
        labels.long(),
        None if fine is None else fine.long(),
        None if gallery is None else gallery.float(),
        None if gallery_labels is None else gallery_labels.long(),
        None if gallery_fine is None else gallery_fine.long(),
        params.ks,
        params.chunk_size,
        params.nmi,
        params.seed,
    )
    ctx.emit("eval", {"step": 0, "metrics": metrics})
    out: dict[str, Any] = {"metrics": metrics, "labels": labels}
    if fine is not None:
        out["fine_labels"] = fine
    if params.projection == "pca":
        out["projection"] = pca_2d(emb)
    return out


@method("checkpoint_save", params=CheckpointSaveParams, description="Writes a model to a file.")
@config_mistakes
def checkpoint_save(ctx: CallContext, params: CheckpointSaveParams) -> dict[str, str]:
    model = _model(ctx, params.model)
    path = Path(params.path)
    save_atomic(
        {
            "format": CHECKPOINT_FORMAT,
            "step": 0,
            "model_spec": model.model_spec,
            "in_features": model.in_features,
            "model": model.module.state_dict(),
        },
        path,
    )
    return {"path": str(path)}


@method("checkpoint_load", params=CheckpointLoadParams, description="Loads a model from a file.")
@config_mistakes
def checkpoint_load(ctx: CallContext, params: CheckpointLoadParams) -> dict[str, Any]:
    state = load_checkpoint(params.path)
    model = load_model(state)
    return {"model": ctx.objects.put(model, MODEL_KIND), "model_config": model.model_spec}


def load_model(state: dict[str, Any], device: str = "auto") -> TrainedModel:
    """Rebuild a model from a checkpoint's spec and weights."""
    from pydantic import TypeAdapter

    from ..training.config import ModelSpec

    spec = TypeAdapter(ModelSpec).validate_python(state["model_spec"])
    dev = resolve_device(device)
    module = build_model(spec, int(state["in_features"]))
    module.load_state_dict(state["model"])
    return TrainedModel(
        module.to(dev).eval(), dict(state["model_spec"]), int(state["in_features"]), dev
    )
