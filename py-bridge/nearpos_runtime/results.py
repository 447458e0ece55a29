"""What the methods return and emit, as pydantic models: the source of ``result_schema``
and ``event_schemas`` in hello_reply and ``python -m nearpos_runtime schema``, from which
the TypeScript result and event types are generated (ts/src/training/generate.ts).

The models describe the values the methods build, before encoding: tensors are tensors
(``TensorField``, the ``{"$tensor": i}`` placeholder in JSON Schema), and a field that a
method leaves out of its result is optional without being nullable (:func:`absent`).
Non-finite floats travel as JSON null (docs/protocol.md, Envelope). Every model forbids
unknown fields, so a test that validates real results against them fails when a method
starts returning something they do not describe.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated, Any

import torch
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, RootModel, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema

from .protocol.tensors import TENSOR_JSON_SCHEMA, TensorField, dtype_name

#: JSON Schema key naming the dtype of a tensor placeholder (the TS type ``Tensor<dtype>``).
DTYPE_KEY = "x-dtype"


def _tensor_of(dtype: str) -> Any:
    """A tensor field of one dtype: checked here, stated in the JSON Schema."""

    def check(t: torch.Tensor) -> torch.Tensor:
        if dtype_name(t.dtype) != dtype:
            raise ValueError(f"expected a {dtype} tensor, got {dtype_name(t.dtype)}")
        return t

    schema = {**TENSOR_JSON_SCHEMA, DTYPE_KEY: dtype}
    return Annotated[TensorField, AfterValidator(check), WithJsonSchema(schema)]


Int64Tensor = _tensor_of("int64")
Float32Tensor = _tensor_of("float32")


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def absent(description: str) -> Any:
    """A field the method leaves out (never null): optional in the JSON Schema, no default.
    Type it ``X | SkipJsonSchema[None]``."""
    return Field(None, description=description, json_schema_extra=_drop_default)


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class MetricValues(RootModel[dict[str, float]]):
    """Metric name -> value: recall@K, map@r, r_precision, nmi, queries, queries_without_match;
    with fine labels also recall@1/class=<c> per coarse class."""


class Metrics(_Result):
    """Retrieval metrics on the coarse (class) labels, and on the fine labels when the data
    has them."""

    coarse: MetricValues
    fine: MetricValues | SkipJsonSchema[None] = absent("Metrics on the fine labels")


class HistoryEntry(_Result):
    """One evaluation: the data of an ``eval`` event, and an entry of a training's history."""

    step: int = Field(description="Optimizer step evaluated (0: the evaluate method)")
    metrics: Metrics = Field(description="Metrics on the evaluated split")
    val_metrics: Metrics | SkipJsonSchema[None] = absent(
        "Metrics on the validation fold, when the data has folds"
    )


class QueuedEventData(_Result):
    """The runtime runs other trainings first (one at a time, in arrival order); sent on
    arrival and whenever the number drops. The run can be cancelled while it waits."""

    ahead: int = Field(description="Runs before this one, the running one included")


class StepEventData(_Result):
    """After each ``log_every``-th optimizer step."""

    step: int = Field(description="Optimizer step, 1-based")
    epoch: int = Field(description="Epoch of the step, 0-based")
    loss: float = Field(description="Loss of the step")
    lr: float = Field(description="Learning rate of the step")
    samples_per_s: float = Field(
        description="Training samples per second since the last step event"
    )
    diagnostics: dict[str, Any] = Field(description="The loss wrapper's diagnostics of the step")


class EpochEventData(_Result):
    """An epoch ended."""

    epoch: int = Field(description="Epoch, 0-based")
    step: int = Field(description="Last step of the epoch")
    loss: float = Field(description="Mean loss of the epoch")


class CheckpointEventData(_Result):
    """A checkpoint file was written (atomically)."""

    step: int = Field(description="Step of the checkpoint")
    path: str = Field(description="The file written")


class WarningEventData(_Result):
    """Something the caller should know; the call goes on."""

    message: str


class TickEventData(_Result):
    """A tick of the ``sleep`` method."""

    i: int = Field(description="Tick number, 0-based")


class TrainResult(_Result):
    """What ``train`` returns."""

    model: str = Field(description="Handle of the trained model (free it with release)")
    metrics: Metrics = Field(description="Final evaluation (with select_best: the selected step's)")
    history: list[HistoryEntry] = Field(description="Every evaluation, in step order")
    losses: list[float] = Field(description="Loss of every step")
    steps: int = Field(description="Steps run in total (resumed ones included)")
    elapsed_s: float = Field(
        description="Wall time of the training loop in this call, evaluation excluded (s)"
    )
    samples_per_s: float = Field(description="Training samples per second in this call")
    checkpoint: str | None = Field(description="Last checkpoint written, or null")
    device: str = Field(description="Device used ('cpu', 'cuda:0' ...)")
    best_step: int | None = Field(
        description="With select_best: the evaluation step whose weights were kept, else null"
    )
    best_val_metrics: Metrics | None = Field(
        description="With select_best: the validation metrics of that step, else null"
    )
    queued_s: float = Field(description="Seconds this run waited for other trainings to finish")
    world_size: int = Field(
        description="Processes that trained (1: one process; distributed: all nodes' processes)"
    )


class EmbedResult(_Result):
    """What ``embed`` returns."""

    embeddings: Float32Tensor = Field(description="N x d embeddings")
    labels: Int64Tensor = Field(description="N labels")
    fine_labels: TensorField | SkipJsonSchema[None] = absent(
        "N fine labels, when the data has them"
    )


class EvaluateResult(_Result):
    """What ``evaluate`` returns."""

    metrics: Metrics
    labels: TensorField = Field(description="Labels of the queries, N")
    fine_labels: TensorField | SkipJsonSchema[None] = absent(
        "Fine labels of the queries, N, when given or in the data"
    )
    projection: Float32Tensor | SkipJsonSchema[None] = absent(
        "N x 2 PCA projection of the embeddings, with projection 'pca'"
    )


class CheckpointSaveResult(_Result):
    """What ``checkpoint_save`` returns."""

    path: str = Field(description="The file written")


class CheckpointLoadResult(_Result):
    """What ``checkpoint_load`` returns."""

    model: str = Field(description="Handle of the loaded model")
    model_config_: dict[str, Any] = Field(alias="model_config", description="The model's config")


class TripletIndices(_Result):
    """Triplets as three int64 tensors of equal length (rows of the embeddings; positives
    and negatives index the reference set when one was given)."""

    anchors: Int64Tensor
    positives: Int64Tensor
    negatives: Int64Tensor


class MineResult(_Result):
    """What ``mine`` returns."""

    indices: TripletIndices
    diagnostics: dict[str, Any] = Field(description="The sampler's diagnostics")


class LossResult(_Result):
    """What ``loss`` returns."""

    value: float = Field(description="The loss value")
    diagnostics: dict[str, Any] = Field(description="The sampler's diagnostics")


class SleepResult(_Result):
    slept: float = Field(description="Seconds slept")


class ReleaseResult(_Result):
    released: bool = Field(description="False when the handle was unknown")


class BytesInResult(_Result):
    nbytes: int


class TensorResult(RootModel[TensorField]):
    """A bare tensor."""


class AnyObject(RootModel[dict[str, Any]]):
    """Any JSON object (tensors anywhere)."""


@dataclass(frozen=True)
class Returns:
    """A method's result model and the types of the events it emits."""

    result: type[BaseModel]
    events: tuple[str, ...] = ("warning",)


#: Event type -> model of its data; one meaning per type, whatever the method.
EVENTS: dict[str, type[BaseModel]] = {
    "queued": QueuedEventData,
    "step": StepEventData,
    "epoch": EpochEventData,
    "eval": HistoryEntry,
    "checkpoint": CheckpointEventData,
    "warning": WarningEventData,
    "tick": TickEventData,
}

#: Method name -> what it returns and emits.
RESULTS: dict[str, Returns] = {
    "train": Returns(TrainResult, ("queued", "step", "epoch", "eval", "checkpoint", "warning")),
    "embed": Returns(EmbedResult),
    "evaluate": Returns(EvaluateResult, ("eval", "warning")),
    "checkpoint_save": Returns(CheckpointSaveResult),
    "checkpoint_load": Returns(CheckpointLoadResult),
    "mine": Returns(MineResult),
    "loss": Returns(LossResult),
    "echo": Returns(AnyObject),
    "sleep": Returns(SleepResult, ("tick", "warning")),
    "release": Returns(ReleaseResult),
    "bytes_in": Returns(BytesInResult),
    "bytes_out": Returns(TensorResult),
}


@functools.cache  # the models are fixed at import; hello sends these on every connect
def describe(method: str) -> dict[str, Any]:
    """``result_schema`` and ``event_schemas`` of a method (empty for an undeclared one).
    Shared between calls: callers copy, never mutate."""
    returns = RESULTS.get(method)
    if returns is None:
        return {}
    return {
        "result_schema": returns.result.model_json_schema(by_alias=True),
        "event_schemas": {t: EVENTS[t].model_json_schema() for t in returns.events},
    }
