"""What a running method sees of the runtime: events, cancellation, objects, logs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from .errors import Cancelled
from .objects import ObjectStore

log = logging.getLogger("nearpos_runtime.call")

# (event type, data) -> None; the server numbers and sends the event, in call order.
EmitFn = Callable[[str, dict[str, Any]], None]


class CancelSignal(Protocol):
    """What a context reads of its call's cancellation: a ``threading.Event`` will do."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class CallContext:
    """Handed to every method as its first argument."""

    def __init__(
        self,
        request_id: str,
        objects: ObjectStore,
        emit: EmitFn,
        cancel_event: CancelSignal | None = None,
        method: str = "",
    ) -> None:
        self.request_id = request_id
        self.objects = objects
        self.method = method
        self._emit = emit
        self._cancel: CancelSignal = cancel_event or threading.Event()
        self.cancel_reason = "cancel_request"

    def emit(self, type: str, data: dict[str, Any]) -> None:
        """Send an ``event`` of ``type`` with ``data`` (may hold tensors); ``seq`` is assigned."""
        if not isinstance(type, str) or not type:
            raise ValueError("event type must be a non-empty string")
        if not isinstance(data, dict):
            raise TypeError(f"event data must be a dict, got {data.__class__.__name__}")
        self._emit(type, data)

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        """Raise ``Cancelled`` if a cancel (or shutdown) asked this call to stop."""
        if self._cancel.is_set():
            raise Cancelled(self.cancel_reason)

    def sleep(self, seconds: float) -> None:
        """Sleep, waking at once on cancellation (then raises ``Cancelled``)."""
        if self._cancel.wait(max(0.0, seconds)):
            raise Cancelled(self.cancel_reason)

    def log(self, message: str) -> None:
        """A log line on stderr, tagged with the method and request id."""
        log.info("[%s %s] %s", self.method, self.request_id[:8], message)

    def warn(self, message: str) -> None:
        """A ``warning`` event to the client, and a log line."""
        log.warning("[%s %s] %s", self.method, self.request_id[:8], message)
        self.emit("warning", {"message": message})
