"""Training, embedding and evaluation of embedding models (usable without the server)."""

from __future__ import annotations

from .config import EvaluateParams, TrainConfig
from .data import DataBundle, DataError, load_data
from .metrics import evaluate_embeddings, nmi, pca_2d, retrieval_metrics
from .models import ModelError, build_model
from .sampler import ClassBalancedSampler
from .trainer import (
    RUN_QUEUE,
    ConfigError,
    TrainedModel,
    Trainer,
    TrainingCancelled,
    TrainingError,
    TrainResult,
    embed_samples,
    load_checkpoint,
    train,
)

__all__ = [
    "RUN_QUEUE",
    "ClassBalancedSampler",
    "ConfigError",
    "DataBundle",
    "DataError",
    "EvaluateParams",
    "ModelError",
    "TrainConfig",
    "TrainResult",
    "TrainedModel",
    "Trainer",
    "TrainingCancelled",
    "TrainingError",
    "build_model",
    "embed_samples",
    "evaluate_embeddings",
    "load_checkpoint",
    "load_data",
    "nmi",
    "pca_2d",
    "retrieval_metrics",
    "train",
]
