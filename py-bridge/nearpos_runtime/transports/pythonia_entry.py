"""The module a TypeScript client loads through pythonia (``python(<this file>)``).

pythonia imports it as a file, not as part of the package, so it uses absolute imports
and puts ``py-bridge/`` on ``sys.path`` when the package is not installed. Only the
functions below are meant to be called; every message they carry is still signed and
checked by ``RuntimeCore`` exactly as over ZeroMQ (docs/protocol.md, Transports).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
import threading
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
if str(_HERE) in sys.path:  # added by pythonia's file import; our names must not shadow
    sys.path.remove(str(_HERE))
try:
    import nearpos_runtime  # noqa: F401
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(_HERE.parents[1]))

from nearpos_runtime.keys import parse_key  # noqa: E402
from nearpos_runtime.lifecycle import (  # noqa: E402
    exit_when_main_thread_ends,
    set_parent_death_signal,
    stdout_to_stderr,
)
from nearpos_runtime.transports.pythonia_io import PythoniaServer  # noqa: E402

log = logging.getLogger("nearpos_runtime.pythonia")
_servers: dict[str, PythoniaServer] = {}
_lock = threading.Lock()
_process_ready = False
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024**3
OPTIONS = {"signed_buffers", "max_message_bytes", "workers", "log_level", "cwd", "env"}


class _FanOut(logging.Handler):
    """Log records as lines for every open server's ``poll`` (stderr is the user's)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 - a bad record must not break a call
            return
        with _lock:
            servers = list(_servers.values())
        for server in servers:
            server.logs.append(line)


def _prepare_process(level: int) -> None:
    """Once per process: parent-death guards, stdout away from Node, logs to ``poll``."""
    global _process_ready
    if _process_ready:
        return
    _process_ready = True
    exit_when_main_thread_ends()  # pythonia's reader ends on EOF of its pipe
    set_parent_death_signal(os.getppid())
    if sys.platform != "win32":  # there pythonia itself talks over stdin/stderr
        stdout_to_stderr()
    handler = _FanOut()
    handler.setFormatter(
        logging.Formatter("%(asctime)s nearpos-runtime %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    from nearpos_runtime import methods  # noqa: F401  (registers the built-in methods)


def _options(text: str) -> dict[str, Any]:
    opts = json.loads(text) if text else {}
    if not isinstance(opts, dict):
        raise ValueError("options must be a JSON object")
    unknown = set(opts) - OPTIONS
    if unknown:
        raise ValueError(f"unknown options {sorted(unknown)}; known: {sorted(OPTIONS)}")
    return opts


def open_server(key_hex: str, options_json: str = "") -> str:
    """Start one runtime in this process. The key (64 hex digits) comes here, over
    pythonia's private pipe, never through argv or the environment.

    Returns JSON ``{"id", "pid", "signed_buffers"}``.
    """
    key = parse_key(key_hex, "open_server")
    opts = _options(options_json)
    signed = bool(opts.get("signed_buffers", False))
    max_bytes = int(opts.get("max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES))
    workers = int(opts.get("workers", 2))
    if workers < 1 or max_bytes < 1:
        raise ValueError("workers and max_message_bytes must be positive")
    level = getattr(logging, str(opts.get("log_level", "INFO")).upper(), logging.INFO)
    # Process-wide by nature: the Python process is shared by every pythonia runtime.
    for name, value in dict(opts.get("env") or {}).items():
        os.environ[str(name)] = str(value)
    if opts.get("cwd"):
        os.chdir(str(opts["cwd"]))
    _prepare_process(level)
    server = PythoniaServer(
        key, signed_buffers=signed, max_message_bytes=max_bytes, workers=workers, pid=os.getpid()
    )
    sid = secrets.token_hex(8)
    with _lock:
        _servers[sid] = server
    log.info(
        "serving over pythonia (pid %d, server %s, signed_buffers=%s, workers=%d)",
        os.getpid(),
        sid,
        signed,
        workers,
    )
    return json.dumps({"id": sid, "pid": os.getpid(), "signed_buffers": signed})


def _server(sid: str) -> PythoniaServer:
    with _lock:
        server = _servers.get(sid)
    if server is None:
        raise KeyError(f"no runtime {sid!r} in this process (closed, or never opened)")
    return server


def submit(sid: str, channel: str, frames_b64: list[str]) -> None:
    """Queue one message (frames as base64 strings) on ``channel``; returns at once."""
    _server(sid).submit(channel, list(frames_b64))


def poll(sid: str, max_wait_s: float = 0.0) -> str:
    """See ``PythoniaServer.poll``."""
    return _server(sid).poll(max_wait_s)


def close_server(sid: str) -> None:
    """Cancel what still runs and forget the runtime; unknown ids are ignored."""
    with _lock:
        server = _servers.pop(sid, None)
    if server is not None:
        server.close()
        log.info("closed server %s", sid)
