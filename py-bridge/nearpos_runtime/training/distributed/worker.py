"""One process of a distributed run: join the group, train its shard, report (leader)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import torch.distributed as dist

from ..atomic import write_atomic
from ..config import TrainConfig
from ..trainer import Trainer, TrainResult
from .channel import RESULT, EventWriter, save_model, write_error, write_json, write_pid
from .group import Group, backend_for, init
from .watch import exit_with_parent


def result_json(r: TrainResult) -> dict[str, Any]:
    """The result as plain JSON (the model travels in ``model.pt``)."""
    return {
        "metrics": r.metrics,
        "history": r.history,
        "losses": r.losses,
        "steps": r.steps,
        "elapsed_s": r.elapsed_s,
        "samples_per_s": r.samples_per_s,
        "checkpoint": r.checkpoint,
        "device": r.device,
        "best_step": r.best_step,
        "best_val_metrics": r.best_val_metrics,
        "world_size": r.world_size,
    }


def write_result(out: Path, r: TrainResult) -> None:
    """``model.pt`` and ``result.json`` of a finished run, in ``out``."""
    m = r.model
    save_model(out, m.module, m.model_spec, m.in_features)
    write_json(out / RESULT, result_json(r))


def restart_marker(cfg: TrainConfig, group: Group) -> Path | None:
    """File naming the run's last checkpoint (written by rank 0, read after a restart)."""
    if cfg.checkpoint is None:
        return None
    return Path(cfg.checkpoint.dir) / f".latest-{group.run_id}"


def _for_this_attempt(cfg: TrainConfig, group: Group) -> tuple[TrainConfig, str | None]:
    """The config of this attempt: threads per process, and after a restart the run's last
    checkpoint to resume from; plus a warning to report."""
    update: dict[str, Any] = {}
    if cfg.threads is None:  # the node's cores shared among its processes
        update["threads"] = max(1, (os.cpu_count() or 1) // group.local_world)
    note = None
    marker = restart_marker(cfg, group)
    if group.restart and marker is not None and marker.is_file():
        update["resume_from"] = marker.read_text().strip()
        note = (
            f"the workers were restarted (restart {group.restart}); resuming from "
            f"{update['resume_from']}"
        )
    elif group.restart:
        start = "its checkpoint" if cfg.resume_from else "step 0"
        note = f"the workers were restarted (restart {group.restart}) from {start}"
    elif marker is not None and group.rank == 0:
        marker.unlink(missing_ok=True)  # a marker of an earlier run of the same id
    return cfg.model_copy(update=update), note


def run_worker(cfg: TrainConfig, out: Path, echo: bool) -> None:
    """Train as the process the launcher's environment describes; raise on failure (the
    launcher reports it), after writing ``errors/rank-<r>.json``."""
    group = Group.from_env()
    exit_with_parent()
    write_pid(out, group.rank)
    events = EventWriter(out, echo) if group.leader else None
    try:
        cfg, note = _for_this_attempt(cfg, group)
        marker = restart_marker(cfg, group)

        def emit(type: str, data: dict[str, Any]) -> None:
            if events is None:
                return
            events(type, data)
            if type == "checkpoint" and marker is not None and group.rank == 0:
                path = str(data["path"]).encode()
                write_atomic(marker, lambda f: f.write(path))

        if note is not None:
            emit("warning", {"message": note})
        d = cfg.distributed
        backend = backend_for("auto" if d is None else d.backend, group.device(cfg.device))
        init(backend, group)
        result = Trainer(cfg, on_event=emit, group=group, backend=backend).run()
        if group.leader:
            write_result(out, result)
    except BaseException as exc:
        write_error(out, group.rank, exc, group.restart)
        raise
    finally:
        if events is not None:
            events.close()
        if dist.is_initialized():
            with contextlib.suppress(Exception):
                dist.destroy_process_group()
