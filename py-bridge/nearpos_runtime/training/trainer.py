"""The training loop: seeded, deterministic on CPU, cancellable, checkpointed, resumable.

Trainings of one process run one at a time, in arrival order (:class:`RunQueue`): torch's
global generator (model init, dropout, a sampler without its own seed), the deterministic
flag and the intra-op thread count are process-wide, so two runs at once would change each
other's results. A run that has to wait emits ``queued`` events and can be cancelled while
it waits.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .atomic import write_atomic
from .config import CosineSchedule, StepSchedule, TrainConfig
from .data import DataBundle, Samples, load_data
from .losses import build_loss
from .metrics import evaluate_embeddings
from .models import build_model, freeze_batchnorm, input_features
from .sampler import ClassBalancedSampler

EventFn = Callable[[str, dict[str, Any]], None]
CHECKPOINT_FORMAT = 1


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, bad checkpoint, missing device)."""


class ConfigError(TrainingError):
    """A training that the config itself rules out (a missing or mismatched checkpoint, a
    device not present, a metric not measured); the message names the field."""

    code = "invalid_params"


class TrainingCancelled(Exception):
    """Raised when the ``cancel`` callback returned True; ``step`` steps had completed."""

    def __init__(self, step: int) -> None:
        super().__init__(f"training cancelled after step {step}")
        self.step = step


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


class RunQueue:
    """One training at a time per process, first come first served.

    ``wait_turn`` returns once every run that arrived earlier has left; meanwhile it reports
    how many runs are ahead (the running one included) through ``on_wait`` whenever that
    number changes, and calls ``poll`` about every ``interval`` seconds (a cancellation
    check: whatever it raises leaves the queue and propagates). ``leave`` ends a turn.
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self._cond = threading.Condition()
        self._order: deque[tuple[object, int]] = deque()  # (ticket, thread); head runs

    def __len__(self) -> int:
        with self._cond:
            return len(self._order)

    def wait_turn(
        self, ticket: object, on_wait: Callable[[int], None], poll: Callable[[], None]
    ) -> float:
        """Seconds waited (0.0 when nothing was ahead)."""
        me = threading.get_ident()
        with self._cond:
            if self._order and self._order[0][1] == me:
                # It would wait for itself for ever (a run started from another's callback).
                raise TrainingError("a training cannot start another one from its own thread")
            self._order.append((ticket, me))
        t0 = time.perf_counter()
        reported = 0
        try:
            while True:
                with self._cond:
                    ahead = self._position(ticket)
                    if ahead and ahead == reported:
                        self._cond.wait(self.interval)
                        ahead = self._position(ticket)
                if ahead == 0:
                    return time.perf_counter() - t0 if reported else 0.0
                if ahead != reported:
                    on_wait(ahead)
                    reported = ahead
                poll()
        except BaseException:
            self.leave(ticket)
            raise

    def leave(self, ticket: object) -> None:
        with self._cond:
            self._order = deque(item for item in self._order if item[0] is not ticket)
            self._cond.notify_all()

    def _position(self, ticket: object) -> int:
        return next(i for i, (t, _) in enumerate(self._order) if t is ticket)


#: The process's queue of trainings (the runtime's ``train`` calls and Python callers alike).
RUN_QUEUE = RunQueue()


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
        for start in range(0, len(samples), batch_size):
            idx = torch.arange(start, min(start + batch_size, len(samples)))
            out.append(model(samples.inputs(idx, train=False).to(device)).float().cpu())
    model.train(was_training)
    if not out:
        return torch.empty(0, 0)
    return torch.cat(out)


def _lr_factor(cfg: TrainConfig, step: int) -> float:
    """Learning-rate multiplier for the update of 1-based ``step``."""
    s = cfg.schedule
    if isinstance(s, CosineSchedule):
        if step <= s.warmup_steps:
            return step / max(1, s.warmup_steps)
        span = max(1, cfg.steps - s.warmup_steps)
        t = (step - s.warmup_steps) / span
        return s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))
    if isinstance(s, StepSchedule):
        return s.gamma ** ((step - 1) // s.step_size)
    return 1.0


def _optimizer(cfg: TrainConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    o = cfg.optimizer
    if o.kind == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    if o.kind == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
    if o.kind == "sgd":
        return torch.optim.SGD(params, lr=o.lr, weight_decay=o.weight_decay, momentum=o.momentum)
    return torch.optim.RMSprop(params, lr=o.lr, weight_decay=o.weight_decay, momentum=o.momentum)


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """torch.save through :func:`write_atomic`: a unique temporary per call, fsynced, then
    renamed over ``path``; readers see the previous file or the new one, the last of
    concurrent writers wins, and a failed or killed save leaves the previous file intact."""
    write_atomic(path, lambda f: torch.save(obj, f))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise TrainingError(f"checkpoint not found: {p}")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TrainingError(f"cannot read checkpoint {p}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"{p} is not a nearpos checkpoint (format {CHECKPOINT_FORMAT})")
    return state


class Trainer:
    """Runs one training configuration.

    ``on_event(type, data)`` receives ``queued``, ``step``, ``epoch``, ``eval``,
    ``checkpoint`` and ``warning`` events. ``cancel()`` is called before each step and while
    the run waits for its turn (:data:`RUN_QUEUE`): it may raise (the runtime's
    cancellation) or return True (then ``TrainingCancelled`` is raised).
    """

    def __init__(
        self,
        config: TrainConfig,
        on_event: EventFn | None = None,
        cancel: Callable[[], bool | None] | None = None,
        data: DataBundle | None = None,
    ) -> None:
        self.cfg = config
        self.on_event = on_event or (lambda _t, _d: None)
        self.cancel = cancel or (lambda: None)
        self.data = data

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

    def _run(self) -> TrainResult:
        cfg = self.cfg
        device = resolve_device(cfg.device)
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
        data = self.data or load_data(cfg.data)
        train = data.train
        sampler = ClassBalancedSampler(
            train.labels,
            cfg.batch.classes,
            cfg.batch.per_class,
            cfg.seed,
            cfg.batch.small_class,
            cfg.batch.singleton_class,
            warn=self._warn,
        )
        probe = train.inputs(torch.arange(1), train=False)
        in_features = input_features(tuple(probe.shape))
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.model, in_features).to(device)
        if cuda and cfg.channels_last and probe.ndim == 4:
            model = model.to(memory_format=torch.channels_last)
        loss_fn = build_loss(
            cfg.loss.name, cfg.loss.config, cfg.sampler.name, cfg.sampler.config
        ).to(device)
        if cfg.freeze_bn:
            freeze_batchnorm(model)
        every = list(model.parameters()) + list(loss_fn.parameters())
        params = [p for p in every if p.requires_grad]
        opt = _optimizer(cfg, params)
        aug = torch.Generator().manual_seed(cfg.seed + 1)
        spec = cfg.model.model_dump()
        start, losses, history, epoch_sum = 0, [], [], 0.0
        best: _Best | None = None
        if cfg.resume_from:
            try:
                st = load_checkpoint(cfg.resume_from)
            except TrainingError as exc:  # the config names a file that is not a checkpoint
                raise ConfigError(f"resume_from: {exc}") from exc
            if st["model_spec"] != spec or int(st["in_features"]) != in_features:
                raise ConfigError(
                    f"resume_from: checkpoint {cfg.resume_from} holds model {st['model_spec']} "
                    f"({st['in_features']} inputs), the config asks for {spec} ({in_features})"
                )
            model.load_state_dict(st["model"])
            loss_fn.load_state_dict(st["loss"])
            opt.load_state_dict(st["optimizer"])
            sampler.load_state_dict(st["sampler"])
            aug.set_state(st["rng"]["augment"])
            torch.set_rng_state(st["rng"]["torch"])
            if cuda and "cuda" in st["rng"]:
                torch.cuda.set_rng_state_all(list(st["rng"]["cuda"]))
            start = int(st["step"])
            losses = [float(v) for v in st["losses"].tolist()]
            history = list(st["history"])
            epoch_sum = float(st["epoch_loss_sum"])
            if st.get("best") is not None:
                b = st["best"]
                best = _Best(int(b["step"]), b["value"], b["val_metrics"], b["model"])
            if start >= cfg.steps:
                raise ConfigError(
                    f"resume_from, steps: checkpoint {cfg.resume_from} is at step {start}; "
                    f"steps = {cfg.steps} leaves nothing to do"
                )
        model.train()
        if cfg.freeze_bn:
            freeze_batchnorm(model)
        per_epoch = max(1, math.ceil(len(train) / sampler.batch_size))
        last_ckpt: str | None = None
        eval_time = 0.0
        t0 = time.perf_counter()
        t_log, n_log = t0, 0
        autocast = (
            torch.autocast(device_type="cuda", dtype=torch.bfloat16)
            if cuda and cfg.amp
            else nullcontext()
        )
        base_lrs = [g["lr"] for g in opt.param_groups]
        step = start
        for step in range(start + 1, cfg.steps + 1):
            if self.cancel():
                raise TrainingCancelled(step - 1)
            factor = _lr_factor(cfg, step)
            for g, lr in zip(opt.param_groups, base_lrs, strict=True):
                g["lr"] = lr * factor
            idx = sampler.next_batch()
            x = train.inputs(idx, train=True, generator=aug).to(device, non_blocking=True)
            if cuda and cfg.channels_last and x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            y = train.labels[idx].to(device)
            with autocast:
                emb = model(x)
            if not bool(torch.isfinite(emb.detach()).all()):
                raise TrainingError(
                    f"embeddings hold NaN or Inf at step {step} (learning rate "
                    f"{opt.param_groups[0]['lr']:g}); lower optimizer.lr, set grad_clip, "
                    "or check the inputs"
                )
            loss = loss_fn(emb.float(), y)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise TrainingError(
                    f"loss is {value} at step {step} (learning rate {opt.param_groups[0]['lr']:g});"
                    " lower optimizer.lr, set grad_clip, or check the inputs"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            losses.append(value)
            epoch_sum += value
            n_log += int(idx.numel())
            if step % cfg.log_every == 0:
                now = time.perf_counter()
                diag = getattr(loss_fn, "last_diagnostics", None) or {}
                self.on_event(
                    "step",
                    {
                        "step": step,
                        "epoch": (step - 1) // per_epoch,
                        "loss": value,
                        "lr": opt.param_groups[0]["lr"],
                        "samples_per_s": n_log / max(now - t_log, 1e-9),
                        "diagnostics": {k: _plain(v) for k, v in diag.items()},
                    },
                )
                t_log, n_log = now, 0
            if step % per_epoch == 0:
                self.on_event(
                    "epoch",
                    {"epoch": step // per_epoch - 1, "step": step, "loss": epoch_sum / per_epoch},
                )
                epoch_sum = 0.0
            final = step == cfg.steps
            if final or (cfg.eval_every and step % cfg.eval_every == 0):
                te = time.perf_counter()
                metrics = self.evaluate(model, data, device)
                entry: dict[str, Any] = {"step": step, "metrics": metrics}
                if data.val is not None:
                    val = (
                        metrics
                        if cfg.eval.split == "val"
                        else self.evaluate(model, data, device, "val")
                    )
                    entry["val_metrics"] = val
                    if cfg.select_best:
                        value = _metric(val, cfg.select_on)
                        # Strictly better only: on a tie the earlier step stays selected.
                        if best is None or value > best.value:
                            best = _Best(step, value, val, _state_copy(model))
                history.append(entry)
                self.on_event("eval", entry)
                eval_time += time.perf_counter() - te
            ck = cfg.checkpoint
            if ck is not None and (final or (ck.every and step % ck.every == 0)):
                path = Path(ck.dir) / f"step-{step}.pt"
                state = {
                    "format": CHECKPOINT_FORMAT,
                    "step": step,
                    "model_spec": spec,
                    "in_features": in_features,
                    "model": model.state_dict(),
                    "loss": loss_fn.state_dict(),
                    "optimizer": opt.state_dict(),
                    "sampler": sampler.state_dict(),
                    "rng": _rng_state(aug, cuda),
                    "losses": torch.tensor(losses, dtype=torch.float64),
                    "history": history,
                    "epoch_loss_sum": epoch_sum,
                    "best": None if best is None else best.state(),
                }
                save_atomic(state, path)
                last_ckpt = str(path)
                self.on_event("checkpoint", {"step": step, "path": last_ckpt})
        elapsed = time.perf_counter() - t0 - eval_time
        done = step - start
        metrics = history[-1]["metrics"] if history else {}
        if best is not None:
            # The eval split was measured on the selected weights at that step already.
            model.load_state_dict(best.model)
            metrics = next(h["metrics"] for h in history if h["step"] == best.step)
        return TrainResult(
            model=TrainedModel(model.eval(), spec, in_features, device),
            metrics=metrics,
            best_step=None if best is None else best.step,
            best_val_metrics=None if best is None else best.val_metrics,
            history=history,
            losses=losses,
            steps=step,
            elapsed_s=elapsed,
            samples_per_s=done * sampler.batch_size / max(elapsed, 1e-9),
            checkpoint=last_ckpt,
            device=str(device),
        )

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


@dataclass
class _Best:
    """The selected evaluation step: its validation metrics and a CPU copy of the weights."""

    step: int
    value: float
    val_metrics: dict[str, dict[str, float]]
    model: dict[str, torch.Tensor]

    def state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "value": self.value,
            "val_metrics": self.val_metrics,
            "model": self.model,
        }


def _state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _metric(metrics: dict[str, dict[str, float]], key: str) -> float:
    """Value of 'coarse.map@r'-style ``key``; TrainingError listing what exists."""
    group, _, name = key.partition(".")
    value = metrics.get(group, {}).get(name)
    if value is None:
        have = [f"{g}.{n}" for g, ms in metrics.items() for n in ms]
        raise ConfigError(f"select_on: no validation metric {key!r}; have {', '.join(have)}")
    return float(value)


def _rng_state(aug: torch.Generator, cuda: bool) -> dict[str, Any]:
    state: dict[str, Any] = {"augment": aug.get_state(), "torch": torch.get_rng_state()}
    if cuda:
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _plain(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return v.item() if v.numel() == 1 else v.tolist()
    return v


def train(config: TrainConfig, on_event: EventFn | None = None) -> TrainResult:
    """Convenience: ``Trainer(config, on_event).run()``."""
    return Trainer(config, on_event).run()
