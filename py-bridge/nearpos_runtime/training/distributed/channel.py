"""The files through which a node's first process reports to whoever started the run.

In the run's directory (``--out``): ``events.jsonl`` (one JSON object per line,
``{"type", "data"}``, appended and flushed per event), ``result.json`` and ``model.pt`` (the
final result and weights, written atomically at the end), ``pids/rank-<r>`` (each process's
id) and ``errors/rank-<r>.json`` (why a process failed). Only plain JSON and tensors
(loaded with ``weights_only=True``) cross it.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, BinaryIO

import torch

from ..atomic import write_atomic

EVENTS = "events.jsonl"
RESULT = "result.json"
MODEL = "model.pt"
FAILURE = "failure.json"
MODEL_FORMAT = 1


def _plain(v: Any) -> Any:
    """JSON-ready: non-finite floats become null (as on the runtime's wire)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def dumps(obj: Any) -> str:
    return json.dumps(_plain(obj), allow_nan=False)


def write_json(path: Path, obj: Any) -> None:
    data = dumps(obj).encode()

    def write(f: BinaryIO) -> None:
        f.write(data)

    write_atomic(path, write)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


class EventWriter:
    """Appends events to ``events.jsonl``; with ``echo`` also prints them (a torchrun job)."""

    def __init__(self, out: Path, echo: bool) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self._f = open(out / EVENTS, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.echo = echo

    def __call__(self, type: str, data: dict[str, Any]) -> None:
        line = dumps({"type": type, "data": data})
        self._f.write(line + "\n")
        self._f.flush()
        if self.echo:
            print(line, flush=True)

    def close(self) -> None:
        self._f.close()


class EventReader:
    """Reads the complete lines appended to ``events.jsonl`` since the last call."""

    def __init__(self, out: Path) -> None:
        self.path = out / EVENTS
        self._pos = 0
        self._rest = b""

    def poll(self) -> list[tuple[str, dict[str, Any]]]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._pos)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self._pos += len(chunk)
        lines = (self._rest + chunk).split(b"\n")
        self._rest = lines.pop()
        out = []
        for line in lines:
            if line.strip():
                ev = json.loads(line)
                out.append((str(ev["type"]), dict(ev["data"])))
        return out


def write_pid(out: Path, rank: int) -> None:
    d = out / "pids"
    d.mkdir(parents=True, exist_ok=True)
    pid = str(os.getpid()).encode()
    write_atomic(d / f"rank-{rank}", lambda f: f.write(pid))


def read_pids(out: Path) -> dict[int, int]:
    """Process id of each rank of this node that has started (rank -> pid)."""
    pids = {}
    for p in sorted((out / "pids").glob("rank-*")):
        try:
            pids[int(p.name.split("-", 1)[1])] = int(p.read_text())
        except (ValueError, OSError):
            continue
    return pids


def write_error(out: Path, rank: int, exc: BaseException, restart: int = 0) -> None:
    code = getattr(exc, "code", None)
    write_json(
        out / "errors" / f"rank-{rank}.json",
        {
            "rank": rank,
            "restart": restart,
            "ename": type(exc).__name__,
            "message": str(exc),
            "code": code if isinstance(code, str) else None,
        },
    )


def read_errors(out: Path) -> dict[int, dict[str, Any]]:
    """Why processes failed (rank -> error), in the last attempt only (after restarts, an
    earlier attempt's errors are history)."""
    errors = {}
    for p in (out / "errors").glob("rank-*.json"):
        try:
            e = read_json(p)
        except (ValueError, OSError):
            continue
        errors[int(e["rank"])] = e
    last = max((int(e.get("restart", 0)) for e in errors.values()), default=0)
    return {r: e for r, e in errors.items() if int(e.get("restart", 0)) == last}


def save_model(out: Path, module: torch.nn.Module, spec: dict[str, Any], in_features: int) -> None:
    state = {
        "format": MODEL_FORMAT,
        "model_spec": spec,
        "in_features": in_features,
        "model": {k: v.detach().cpu() for k, v in module.state_dict().items()},
    }
    write_atomic(out / MODEL, lambda f: torch.save(state, f))


def load_model_state(out: Path) -> dict[str, Any]:
    """The final weights of a run (tensors and plain data only: ``weights_only=True``)."""
    state = torch.load(out / MODEL, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != MODEL_FORMAT:
        raise ValueError(f"{out / MODEL} is not a model file of a distributed run")
    return state
