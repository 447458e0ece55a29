"""The runtime's side of a distributed run: launch, follow, cancel, collect.

:func:`run_distributed` starts :mod:`.launcher` in a process of its own, forwards the events
the node's first process appends to ``events.jsonl``, and at the end loads ``result.json``
and ``model.pt`` (``weights_only=True``). Cancellation sends the launcher SIGTERM (its agent
stops every process), then SIGKILL; a failure becomes :class:`WorkerFailed` naming the rank
and its exit code or signal, or :class:`RendezvousFailed`. No process of the run outlives it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..errors import ConfigError, RendezvousFailed, TrainingCancelled, TrainingError, WorkerFailed
from ..models import build_model
from ..run_queue import RUN_QUEUE
from ..trainer import EventFn, TrainedModel, TrainResult, resolve_device
from .channel import (
    FAILURE,
    RESULT,
    EventReader,
    load_model_state,
    read_errors,
    read_json,
    read_pids,
    write_json,
)

POLL_S = 0.05
#: Seconds the launcher gets to stop its processes after SIGTERM before it is killed.
STOP_GRACE_S = 10.0
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])  # the directory of nearpos_runtime


def run_distributed(
    cfg: TrainConfig,
    on_event: EventFn | None = None,
    cancel: Callable[[], bool | None] | None = None,
    workdir: Path | None = None,
) -> TrainResult:
    """Train ``cfg`` (``cfg.distributed`` set) on this node's processes; the result and
    the events are those of the node's first process. ``workdir`` (kept) holds the run's
    files; by default a temporary directory, removed at the end."""
    emit = on_event or (lambda _t, _d: None)
    poll = cancel or (lambda: None)

    def poll_cancel() -> None:
        if poll():
            raise TrainingCancelled(0)

    ticket = object()
    waited = RUN_QUEUE.wait_turn(
        ticket, lambda ahead: emit("queued", {"ahead": ahead}), poll_cancel
    )
    rundir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="nearpos-run-"))
    try:
        result = _run(cfg, rundir, emit, poll)
    finally:
        RUN_QUEUE.leave(ticket)
        if workdir is None:
            shutil.rmtree(rundir, ignore_errors=True)
    result.queued_s = waited
    return result


def _run(
    cfg: TrainConfig, rundir: Path, emit: EventFn, poll: Callable[[], bool | None]
) -> TrainResult:
    rundir.mkdir(parents=True, exist_ok=True)
    write_json(rundir / "config.json", cfg.model_dump(mode="json"))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [_PACKAGE_ROOT, env.get("PYTHONPATH", "")] if p)
    with open(rundir / "launcher.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nearpos_runtime.training.distributed.launcher", str(rundir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    reader = EventReader(rundir)
    last_step = 0
    try:
        while True:
            for type, data in reader.poll():
                last_step = int(data.get("step", last_step)) if type == "step" else last_step
                emit(type, data)
            if proc.poll() is not None:
                break
            if poll():
                raise TrainingCancelled(last_step)
            time.sleep(POLL_S)
        for type, data in reader.poll():
            emit(type, data)
    except BaseException:
        stop(proc)
        raise
    finally:
        reap(rundir)
    if proc.returncode != 0:
        raise failure(rundir, proc.returncode)
    return _collect(cfg, rundir)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the launcher (its agent stops the processes), SIGKILL if it lingers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()


def _is_worker(pid: int) -> bool:
    """Alive and still a process of a run (the id was not reused)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: trust the pid file
    return b"nearpos_runtime.train" in cmdline


def reap(rundir: Path, wait_s: float = 5.0) -> list[int]:
    """Kill (SIGKILL) any process of the run still alive; returns their ids. The processes
    exit with their launcher on their own; this is the last resort."""
    deadline = time.monotonic() + wait_s
    alive = [pid for pid in read_pids(rundir).values() if _is_worker(pid)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [pid for pid in alive if _is_worker(pid)]
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return alive


def _log_tail(rundir: Path, lines: int = 15) -> str:
    try:
        text = (rundir / "launcher.log").read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def failure(rundir: Path, returncode: int) -> Exception:
    """The error of a run whose launcher exited with ``returncode``."""
    try:
        info: dict[str, Any] = read_json(rundir / FAILURE)
    except (OSError, ValueError):
        tail = _log_tail(rundir)
        return TrainingError(
            f"the distributed launcher exited with code {returncode}"
            + (f"; its last lines:\n{tail}" if tail else "")
        )
    kind = info.get("kind")
    if kind == "rendezvous":
        return RendezvousFailed(
            f"distributed: the rendezvous at {info['endpoint']} did not form within "
            f"{info['timeout_s']} s ({info['nnodes']} node(s) expected; is every node started, "
            f"with the same nnodes and rdzv_endpoint, and can they reach node 0 on that port?): "
            f"{info['message']}"
        )
    if kind != "workers":
        return TrainingError(f"distributed launcher: {info.get('message', kind)}")
    return _worker_failure(info["failures"], read_errors(rundir))


def _worker_failure(failures: list[dict[str, Any]], errors: dict[int, dict[str, Any]]) -> Exception:
    """The failure that ended the run: a config mistake; else a process ended by a signal
    (not the launcher's SIGTERM); else a process that raised; else the first one."""
    for rank, e in sorted(errors.items()):
        if e.get("code") == "invalid_params":
            return ConfigError(f"{e['message']} (rank {rank})")
    killed = [f for f in failures if f["signal"] not in (None, "SIGTERM")]
    raised = [f for f in failures if f["rank"] in errors]
    first = (killed or raised or failures)[0]
    rank, sig, code = first["rank"], first["signal"], first["exitcode"]
    how = f"was killed by signal {sig}" if sig else f"exited with code {code}"
    err = errors.get(rank)
    why = f": {err['ename']}: {err['message']}" if err else ""
    others = [f["rank"] for f in failures if f is not first]
    rest = f"; rank(s) {', '.join(map(str, others))} failed after it" if others else ""
    return WorkerFailed(
        f"distributed training failed: rank {rank} (pid {first['pid']}) {how}{why}{rest}; "
        "every process of the run was stopped",
        rank,
        code,
        sig,
    )


def _collect(cfg: TrainConfig, rundir: Path) -> TrainResult:
    r = read_json(rundir / RESULT)
    state = load_model_state(rundir)
    device = resolve_device(cfg.device)
    module = build_model(cfg.model, int(state["in_features"]))
    module.load_state_dict(state["model"])
    model = TrainedModel(
        module.to(device).eval(), dict(state["model_spec"]), int(state["in_features"]), device
    )
    return TrainResult(
        model=model,
        metrics=r["metrics"],
        history=r["history"],
        losses=[float("nan") if v is None else float(v) for v in r["losses"]],
        steps=int(r["steps"]),
        elapsed_s=float(r["elapsed_s"]),
        samples_per_s=float(r["samples_per_s"]),
        checkpoint=r["checkpoint"],
        device=str(r["device"]),
        best_step=r["best_step"],
        best_val_metrics=r["best_val_metrics"],
        world_size=int(r["world_size"]),
    )


__all__ = ["reap", "run_distributed", "stop"]
