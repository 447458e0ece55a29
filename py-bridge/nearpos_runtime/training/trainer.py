"""The training loop: seeded, deterministic on CPU, cancellable, checkpointed, resumable.

A run goes through its phases in :meth:`Trainer._run`: set-up (:meth:`Trainer._set_up`),
resume from a checkpoint (:func:`.checkpoint.resume`), the step loop (:meth:`Trainer._loop`,
one update in :meth:`Trainer._step`), evaluation with best-step selection
(:meth:`Trainer._evaluate_step`, :mod:`.selection`), checkpoints (:meth:`Trainer._checkpoint`,
:mod:`.checkpoint`) and the result (:meth:`Trainer._result`). Trainings of one process run
one at a time (:mod:`.run_queue`).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, closing, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .checkpoint import CHECKPOINT_FORMAT, load_checkpoint, resume, run_state, save_atomic
from .config import TrainConfig
from .data import DataBundle, Samples, load_data
from .data.batches import TrainBatches
from .errors import ConfigError, TrainingCancelled, TrainingError
from .losses import build_loss
from .metrics import evaluate_embeddings
from .models import build_model, freeze_batchnorm, input_features
from .optim import build_optimizer, lr_factor
from .run_queue import RUN_QUEUE, RunQueue
from .run_state import Progress, RunParts
from .sampler import BatchSampler, ClassBalancedSampler, ShardSampler
from .selection import select

if TYPE_CHECKING:
    from .distributed.group import Group

EventFn = Callable[[str, dict[str, Any]], None]

__all__ = [
    "CHECKPOINT_FORMAT",
    "RUN_QUEUE",
    "ConfigError",
    "EventFn",
    "RunQueue",
    "TrainResult",
    "TrainedModel",
    "Trainer",
    "TrainingCancelled",
    "TrainingError",
    "embed_samples",
    "load_checkpoint",
    "resolve_device",
    "save_atomic",
    "train",
]


@dataclass
class TrainedModel:
    """A model with what is needed to rebuild it (stored as a runtime object)."""

    module: nn.Module
    model_spec: dict[str, Any]
    in_features: int
    device: torch.device


@dataclass
class TrainResult:
    model: TrainedModel
    metrics: dict[str, dict[str, float]]
    history: list[dict[str, Any]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    steps: int = 0
    elapsed_s: float = 0.0
    samples_per_s: float = 0.0
    checkpoint: str | None = None
    device: str = "cpu"
    best_step: int | None = None
    best_val_metrics: dict[str, dict[str, float]] | None = None
    queued_s: float = 0.0
    world_size: int = 1


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' requested but CUDA is not available here")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def embed_samples(
    model: nn.Module, samples: Samples, device: torch.device, batch_size: int = 512
) -> torch.Tensor:
    """Embeddings of every sample (eval mode, no grad), as float32 on the CPU."""
    was_training = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for x in samples.eval_batches(batch_size, pin=device.type == "cuda"):
            out.append(model(x.to(device, non_blocking=True)).float().cpu())
    model.train(was_training)
    if not out:
        return torch.empty(0, 0)
    return torch.cat(out)


class Trainer:
    """Runs one training configuration.

    ``on_event(type, data)`` receives ``queued``, ``step``, ``epoch``, ``eval``,
    ``checkpoint`` and ``warning`` events. ``cancel()`` is called before each step and while
    the run waits for its turn (:data:`RUN_QUEUE`): it may raise (the runtime's
    cancellation) or return True (then ``TrainingCancelled`` is raised).

    With ``group`` (a process of a distributed run, its process group joined) the trainer
    trains its shard of each global batch in a DistributedDataParallel replica, the sampler
    gathers the global batch, the node's first process evaluates and reports, and rank 0
    writes the checkpoints (:mod:`.distributed`).
    """

    def __init__(
        self,
        config: TrainConfig,
        on_event: EventFn | None = None,
        cancel: Callable[[], bool | None] | None = None,
        data: DataBundle | None = None,
        group: Group | None = None,
        backend: str = "gloo",
    ) -> None:
        self.cfg = config
        self.on_event = on_event or (lambda _t, _d: None)
        self.cancel = cancel or (lambda: None)
        self.data = data
        self.group = group
        self.backend = backend
        #: A sampler that cannot gather: each rank's loss is its shard's (see _set_up).
        self.shard_loss = False

    @property
    def world(self) -> int:
        return 1 if self.group is None else self.group.world

    @property
    def leader(self) -> bool:
        """Evaluates and reports: the single process, or the first process of each node."""
        return self.group is None or self.group.leader

    def _warn(self, message: str) -> None:
        self.on_event("warning", {"message": message})

    def run(self) -> TrainResult:
        ticket = object()
        waited = RUN_QUEUE.wait_turn(
            ticket, lambda ahead: self.on_event("queued", {"ahead": ahead}), self._poll_cancel
        )
        try:
            result = self._run_alone()
        finally:
            RUN_QUEUE.leave(ticket)
        result.queued_s = waited
        return result

    def _poll_cancel(self) -> None:
        if self.cancel():
            raise TrainingCancelled(0)

    def _run_alone(self) -> TrainResult:
        cfg = self.cfg
        prev_det = torch.are_deterministic_algorithms_enabled()
        prev_threads = torch.get_num_threads()
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        if cfg.deterministic:
            # cuBLAS needs this before its first use to be deterministic.
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
        try:
            return self._run()
        finally:
            torch.use_deterministic_algorithms(prev_det)
            torch.set_num_threads(prev_threads)

    # ------------------------------------------------------------ the phases of a run

    def _run(self) -> TrainResult:
        cfg = self.cfg
        parts = self._set_up()
        rank = 0 if self.group is None else self.group.rank
        prog = (
            resume(cfg.resume_from, parts, cfg.steps, rank, self.world)
            if cfg.resume_from
            else Progress()
        )
        parts.model.train()
        if cfg.freeze_bn:
            freeze_batchnorm(parts.model)
        t0 = time.perf_counter()
        prog.t_log = t0
        self._loop(parts, prog)
        return self._result(parts, prog, time.perf_counter() - t0 - prog.eval_time)

    def _set_up(self) -> RunParts:
        """Device, data, sampler, model, loss and optimizer, built in a fixed order (the
        global generator is seeded just before the model, so its init is the seed's)."""
        cfg = self.cfg
        g = self.group
        device = resolve_device(cfg.device) if g is None else g.device(cfg.device)
        self._check_device_settings(device)
        data = self.data or load_data(cfg.data)
        train = data.train
        sampler: BatchSampler = ClassBalancedSampler(
            train.labels,
            cfg.batch.classes,
            cfg.batch.per_class,
            cfg.seed,
            cfg.batch.small_class,
            cfg.batch.singleton_class,
            warn=self._warn,
        )
        if g is not None:
            sampler = ShardSampler(sampler, g.rank, g.world)
        probe = train.inputs(torch.arange(1), train=False)
        in_features = input_features(tuple(probe.shape))
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.model, in_features).to(device)
        if device.type == "cuda" and cfg.channels_last and probe.ndim == 4:
            model = model.to(memory_format=torch.channels_last)
        sampler_config = cfg.sampler.config
        if g is not None:
            sampler_config = self._distributed_sampler_config()
            if g.rank:  # dropout draws of its own (rank 0 goes on from the init)
                torch.manual_seed(cfg.seed + 1_000_003 * g.rank)
        loss_fn = build_loss(cfg.loss.name, cfg.loss.config, cfg.sampler.name, sampler_config).to(
            device
        )
        if cfg.freeze_bn:
            freeze_batchnorm(model)
        every = list(model.parameters()) + list(loss_fn.parameters())
        params = [p for p in every if p.requires_grad]
        opt = build_optimizer(cfg, params)
        net: nn.Module = model
        if g is not None:
            from torch.nn.parallel import DistributedDataParallel

            ids = [device.index] if device.type == "cuda" else None
            net = DistributedDataParallel(model, device_ids=ids)
        return RunParts(
            net=net,
            device=device,
            data=data,
            sampler=sampler,
            model=model,
            loss_fn=loss_fn,
            params=params,
            opt=opt,
            # Before a resume loads the optimizer state: that holds the scheduled rate.
            base_lrs=[g["lr"] for g in opt.param_groups],
            aug=torch.Generator().manual_seed(cfg.seed + 1),
            spec=cfg.model.model_dump(),
            in_features=in_features,
        )

    def _distributed_sampler_config(self) -> dict[str, Any]:
        """The sampler gathers the global batch (its ``distributed`` option; the step scales
        by the world size). A sampler without that option mines each process's shard alone:
        a warning, and the step's loss is the mean of the shards' losses."""
        from ..plugins import plugin_index

        cfg = self.cfg
        wanted = {**cfg.sampler.config, "distributed": True, "scale_by_world_size": False}
        try:
            plugin_index().get(cfg.sampler.name).validate_config(wanted, "sampler.config")
        except Exception:  # noqa: BLE001 - the plugin has no such option
            self.shard_loss = True
            self._warn(
                f"sampler {cfg.sampler.name!r} has no 'distributed' option: each process "
                "mines its own shard of the batch, and the loss is the mean of the shards' "
                "losses (not the global batch's)"
            )
            return cfg.sampler.config
        return wanted

    def _check_device_settings(self, device: torch.device) -> None:
        cfg = self.cfg
        cuda = device.type == "cuda"
        if cuda and cfg.deterministic:
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        if (cfg.amp or cfg.channels_last) and not cuda:
            self._warn("amp and channels_last apply on CUDA only; ignored on CPU")
        if cfg.batch.per_class == 2:
            self._warn(
                "batch.per_class = 2: the nearest positive is the only positive, so "
                "nearest-positive sampling changes nothing; use 3 or more"
            )

    def _loop(self, parts: RunParts, prog: Progress) -> None:
        """Steps ``prog.start + 1 .. cfg.steps``: update, report, evaluate, checkpoint."""
        cfg = self.cfg
        per_epoch = max(1, math.ceil(len(parts.data.train) / parts.sampler.batch_size))
        autocast: AbstractContextManager[Any] = (
            torch.autocast(device_type="cuda", dtype=torch.bfloat16)
            if parts.cuda and cfg.amp
            else nullcontext()
        )
        train, cuda = parts.data.train, parts.cuda
        batches = train.train_batches(parts.sampler, cfg.seed, parts.aug, pin=cuda)
        with closing(batches):
            for step in range(prog.start + 1, cfg.steps + 1):
                if self.cancel():
                    raise TrainingCancelled(step - 1)
                idx, value = self._step(parts, step, next(batches), autocast)
                prog.step = step
                prog.losses.append(value)
                prog.epoch_sum += value
                prog.n_log += parts.sampler.batch_size
                self._report(parts, prog, step, value, per_epoch)
                final = step == cfg.steps
                if final or (cfg.eval_every and step % cfg.eval_every == 0):
                    self._evaluate_step(parts, prog, step)
                ck = cfg.checkpoint
                if ck is not None and (final or (ck.every and step % ck.every == 0)):
                    self._checkpoint(parts, prog, step, Path(ck.dir), batches)

    def _step(
        self,
        parts: RunParts,
        step: int,
        batch: tuple[torch.Tensor, torch.Tensor],
        autocast: AbstractContextManager[Any],
    ) -> tuple[torch.Tensor, float]:
        """One optimizer update on ``batch`` (sample indices, inputs); returns the indices
        and the loss."""
        cfg, opt, train = self.cfg, parts.opt, parts.data.train
        factor = lr_factor(cfg, step)
        for g, lr in zip(opt.param_groups, parts.base_lrs, strict=True):
            g["lr"] = lr * factor
        idx, x = batch
        x = x.to(parts.device, non_blocking=True)
        if parts.cuda and cfg.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        y = train.labels[idx].to(parts.device)
        with autocast:
            emb = parts.net(x)
        lr_now = opt.param_groups[0]["lr"]
        if not bool(torch.isfinite(emb.detach()).all()):
            raise TrainingError(
                f"embeddings hold NaN or Inf at step {step} (learning rate {lr_now:g}); "
                "lower optimizer.lr, set grad_clip, or check the inputs"
            )
        loss = parts.loss_fn(emb.float(), y)
        value = float(loss.detach()) if not self.shard_loss else _mean_over_ranks(loss)
        if not math.isfinite(value):
            raise TrainingError(
                f"loss is {value} at step {step} (learning rate {lr_now:g}); "
                "lower optimizer.lr, set grad_clip, or check the inputs"
            )
        opt.zero_grad(set_to_none=True)
        if self.world == 1 or self.shard_loss:
            loss.backward()
        else:
            # Every rank's loss is the global batch's; DistributedDataParallel averages the
            # model's gradients over ranks, the world factor makes that average their sum.
            # The loss's own parameters see the whole batch on every rank already.
            (loss * self.world).backward()
            for p in parts.loss_fn.parameters():
                if p.grad is not None:
                    p.grad.div_(self.world)
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(parts.params, cfg.grad_clip)
        opt.step()
        return idx, value

    def _report(
        self, parts: RunParts, prog: Progress, step: int, value: float, per_epoch: int
    ) -> None:
        """``step`` events every ``log_every`` steps, ``epoch`` events at each epoch's end."""
        if step % self.cfg.log_every == 0:
            now = time.perf_counter()
            diag = getattr(parts.loss_fn, "last_diagnostics", None) or {}
            self.on_event(
                "step",
                {
                    "step": step,
                    "epoch": (step - 1) // per_epoch,
                    "loss": value,
                    "lr": parts.opt.param_groups[0]["lr"],
                    "samples_per_s": prog.n_log / max(now - prog.t_log, 1e-9),
                    "diagnostics": {k: _plain(v) for k, v in diag.items()},
                },
            )
            prog.t_log, prog.n_log = now, 0
        if step % per_epoch == 0:
            self.on_event(
                "epoch",
                {"epoch": step // per_epoch - 1, "step": step, "loss": prog.epoch_sum / per_epoch},
            )
            prog.epoch_sum = 0.0

    def _evaluate_step(self, parts: RunParts, prog: Progress, step: int) -> None:
        """Evaluate at ``step`` (and on ``val`` when there is one), keep the best step."""
        if not self.leader:
            return
        cfg, data, model = self.cfg, parts.data, parts.model
        te = time.perf_counter()
        metrics = self.evaluate(model, data, parts.device)
        entry: dict[str, Any] = {"step": step, "metrics": metrics}
        if data.val is not None:
            val = (
                metrics
                if cfg.eval.split == "val"
                else self.evaluate(model, data, parts.device, "val")
            )
            entry["val_metrics"] = val
            if cfg.select_best:
                prog.best = select(prog.best, step, val, cfg.select_on, model)
        prog.history.append(entry)
        self.on_event("eval", entry)
        prog.eval_time += time.perf_counter() - te

    def _checkpoint(
        self, parts: RunParts, prog: Progress, step: int, directory: Path, batches: TrainBatches
    ) -> None:
        path = directory / f"step-{step}.pt"
        ranks = None
        if self.group is not None:  # a collective: every rank takes part
            from .distributed.rng import gather_rng_states

            ranks = gather_rng_states(parts, self.backend)
            if self.group.rank != 0:
                prog.last_ckpt = str(path)
                return
        save_atomic(run_state(parts, prog, step, batches.sampler_state(), ranks), path)
        prog.last_ckpt = str(path)
        self.on_event("checkpoint", {"step": step, "path": prog.last_ckpt})

    def _result(self, parts: RunParts, prog: Progress, elapsed: float) -> TrainResult:
        """The result; with a selected best step, its weights and its metrics."""
        model, best, history = parts.model, prog.best, prog.history
        metrics = history[-1]["metrics"] if history else {}
        if best is not None:
            # The eval split was measured on the selected weights at that step already.
            model.load_state_dict(best.model)
            metrics = next(h["metrics"] for h in history if h["step"] == best.step)
        done = prog.step - prog.start
        return TrainResult(
            model=TrainedModel(model.eval(), parts.spec, parts.in_features, parts.device),
            metrics=metrics,
            best_step=None if best is None else best.step,
            best_val_metrics=None if best is None else best.val_metrics,
            history=history,
            losses=prog.losses,
            steps=prog.step,
            elapsed_s=elapsed,
            samples_per_s=done * parts.sampler.batch_size / max(elapsed, 1e-9),
            checkpoint=prog.last_ckpt,
            device=str(parts.device),
            world_size=self.world,
        )

    # ------------------------------------------------------------ evaluation

    def evaluate(
        self, model: nn.Module, data: DataBundle, device: torch.device, split: str | None = None
    ) -> dict[str, dict[str, float]]:
        e = self.cfg.eval
        split = split or e.split
        if data.query is not None and data.gallery is not None and split == "test":
            q, g = data.query, data.gallery
            qe = embed_samples(model, q, device, e.batch_size)
            ge = embed_samples(model, g, device, e.batch_size)
            out = evaluate_embeddings(
                qe, q.labels, q.fine_labels, ge, g.labels, g.fine_labels,
                e.ks, e.chunk_size, e.nmi, self.cfg.seed,
            )
        else:
            s = data.split(split)
            emb = embed_samples(model, s, device, e.batch_size)
            out = evaluate_embeddings(
                emb, s.labels, s.fine_labels, ks=e.ks, chunk_size=e.chunk_size,
                with_nmi=e.nmi, seed=self.cfg.seed,
            )
        if self.cfg.freeze_bn:
            freeze_batchnorm(model)
        return out


def _mean_over_ranks(loss: torch.Tensor) -> float:
    import torch.distributed as dist

    t = loss.detach().clone()
    dist.all_reduce(t)
    return float(t) / dist.get_world_size()


def _plain(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return v.item() if v.numel() == 1 else v.tolist()
    return v


def train(config: TrainConfig, on_event: EventFn | None = None) -> TrainResult:
    """Convenience: ``Trainer(config, on_event).run()``."""
    return Trainer(config, on_event).run()
