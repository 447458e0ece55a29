"""pythonia front end: frames arrive as base64 strings through ``submit`` and leave
through ``poll``, both called from pythonia's single Python thread.

That thread also reads every other pythonia request, so nothing here may block it for
long: ``submit`` only authenticates and queues (calls run on the core's workers, control
requests on this server's control thread) and ``poll`` waits at most ``MAX_WAIT_S``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import queue
import select
import threading
from collections import deque
from typing import Any

from ..calls import Outbox
from ..protocol.wire import Buffer
from ..server import RuntimeCore

log = logging.getLogger("nearpos_runtime.pythonia")
CHANNELS = ("request", "control")
MAX_WAIT_S = 0.05
MAX_LOG_LINES = 10_000
IDENT = b""  # one client per server: no routing identity


class PythoniaServer:
    """One runtime served over pythonia: a ``RuntimeCore`` plus a control thread."""

    def __init__(
        self,
        key: bytes,
        *,
        signed_buffers: bool,
        max_message_bytes: int,
        workers: int,
        pid: int,
    ) -> None:
        self.core = RuntimeCore(
            key,
            signed_buffers=signed_buffers,
            max_message_bytes=max_message_bytes,
            workers=workers,
            pid=pid,
        )
        self.control_out = Outbox()
        self.logs: deque[str] = deque(maxlen=MAX_LOG_LINES)
        self.stopped = threading.Event()
        self._control_in: queue.SimpleQueue[list[bytes] | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._control_loop, name="nearpos-control")
        self._thread.daemon = True
        self._thread.start()

    # -- called from pythonia's thread --------------------------------------------------

    def submit(self, channel: str, frames_b64: list[str]) -> None:
        """Queue one message. A frame that is not base64 counts as ``malformed`` and the
        message is dropped, as a frame count below 4 would be."""
        if channel not in CHANNELS:
            raise ValueError(f"channel must be one of {', '.join(CHANNELS)}, got {channel!r}")
        if self.stopped.is_set():
            return
        if _decoded_size(frames_b64) > self.core.max_message_bytes:
            self.core.count_drop("oversized")  # before decoding: nothing allocated for it
            return
        try:
            frames = [base64.b64decode(f, validate=True) for f in frames_b64]
        except (binascii.Error, TypeError, ValueError):
            frames = []  # fails check 1 (malformed) in authenticate
        if channel == "request":
            self.core.on_request(IDENT, frames)
        else:
            self._control_in.put(frames)

    def poll(self, max_wait_s: float) -> str:
        """Messages and log lines ready now, waiting up to ``max_wait_s`` (capped at 50 ms)
        for the first: JSON ``{"m": [[channel, [frame_b64, ...]], ...], "log": [line, ...],
        "stopped": bool}``."""
        wait = min(max(float(max_wait_s), 0.0), MAX_WAIT_S)
        outboxes = (("request", self.core.outbox), ("control", self.control_out))
        if wait > 0 and not self.logs and not self.stopped.is_set():
            try:
                select.select([o.fileno() for _, o in outboxes], [], [], wait)
            except (OSError, ValueError):  # closed under us
                pass
        messages: list[list[Any]] = []
        if not self._closed:
            for channel, outbox in outboxes:
                for _ident, frames in outbox.drain():
                    messages.append([channel, [_b64(f) for f in frames]])
        lines = []
        while self.logs:
            lines.append(self.logs.popleft())
        # "stopped" only once everything before it was handed over
        stopped = self.stopped.is_set() and not messages
        return json.dumps({"m": messages, "log": lines, "stopped": stopped})

    def close(self) -> None:
        """Cancel whatever still runs and free the core; idempotent."""
        if self._closed:
            return
        if not self.stopped.is_set():
            self._control_in.put(None)
            self.core.cancel_all()
            self.stopped.set()
        self._closed = True
        self.core.close()
        self.control_out.close()

    # -- control thread -----------------------------------------------------------------

    def _control_loop(self) -> None:
        while True:
            frames = self._control_in.get()
            if frames is None:
                return
            try:
                outcome = self.core.on_control(frames)
            except Exception:  # pragma: no cover - keep serving control requests
                log.exception("control request failed")
                continue
            if outcome.reply is not None:
                self.control_out.put(IDENT, outcome.reply)
            if outcome.shutdown:
                self.stopped.set()
                return


def _decoded_size(frames_b64: list[str]) -> int:
    """Bytes the base64 strings decode to (0 for what is not a string: decoding refuses it)."""
    return sum(len(f) // 4 * 3 - f[-2:].count("=") if isinstance(f, str) else 0 for f in frames_b64)


def _b64(frame: Buffer) -> str:
    return base64.b64encode(frame).decode("ascii")
