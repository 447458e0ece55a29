"""Calls in flight: ordered events, exactly one terminal message, cancellation."""

from __future__ import annotations

import logging
import os
import threading
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

from .context import CallContext
from .errors import Cancelled, MessageTooLarge, NearposError
from .objects import ObjectStore
from .protocol.messages import Codec
from .protocol.wire import Buffer
from .registry import MethodSpec

log = logging.getLogger("nearpos_runtime.calls")
Outgoing = tuple[bytes, list[Buffer]]  # (routing identity, frames)


class Outbox:
    """Messages for the request socket from any thread, and the wake-up of the thread that
    sends them.

    By default a pipe (``fileno``) wakes a poll; a front end may install its own ``waker``
    instead. At most one wake-up is outstanding: ``put`` wakes only when none is pending
    since the last ``drain``. The thread that drains (``drained_on_this_thread``) needs no
    wake-up: it drains after each request it handled, so its own messages skip it.
    """

    def __init__(self) -> None:
        self._queue: deque[Outgoing] = deque()  # append and popleft are atomic
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._drainer: int | None = None
        self._waker: Callable[[], None] = self._wake_pipe
        self._piped = True
        self._pending = False  # a wake-up was sent and no drain has run since
        self._lock = threading.Lock()
        # ``linger``: the draining thread waits on ``_signal`` (held = not signalled) while
        # ``_lingering``; the first put then releases it instead of sending a wake-up.
        self._lingering = False
        self._signal = threading.Lock()
        self._signal.acquire()
        self._local = threading.local()  # defers / owed: see settle

    def fileno(self) -> int:
        return self._read

    def use_waker(self, waker: Callable[[], None]) -> None:
        """Wake the draining thread with ``waker()`` instead of the pipe (it must not block)."""
        self._waker = waker
        self._piped = False

    def drained_on_this_thread(self) -> None:
        """Declare the calling thread the one that drains, after every request it handles."""
        self._drainer = threading.get_ident()

    def defer_final_on_this_thread(self) -> None:
        """Declare the calling thread one that calls ``settle`` as soon as its task ends:
        its ``put(..., final=True)`` then notifies the drainer only then (see ``settle``)."""
        self._local.defers = True

    def settle(self) -> None:
        """The notification a ``put(..., final=True)`` of this thread still owes, if any.

        A worker that notifies right after queueing a call's terminal message goes on
        running Python (unwinding the call) while the drainer it woke waits for the GIL:
        two wake-ups for one. Notified here, just before the worker blocks for its next
        task, the drainer gets the GIL at once."""
        if getattr(self._local, "owed", False):
            self._local.owed = False
            self._notify()

    def put(self, ident: bytes, frames: list[Buffer], final: bool = False) -> None:
        """Queue a message; ``final``: the last of its call, its thread's task ends now."""
        self._queue.append((ident, frames))
        if threading.get_ident() == self._drainer:
            return
        if final and getattr(self._local, "defers", False):
            self._local.owed = True
            return
        self._notify()

    def _notify(self) -> None:
        # The item is queued before the flag is read, and drain clears the flag before
        # taking items: whatever it misses finds the flag clear and wakes it again.
        with self._lock:
            if self._lingering:  # the drainer waits right here: no wake-up needed
                self._lingering = False
                self._signal.release()
                return
            if self._pending:
                return
            self._pending = True
        try:
            self._waker()
        except Exception:  # noqa: BLE001 - the next put or the drainer's own timeout retries
            with self._lock:
                self._pending = False
            log.exception("could not wake the thread that sends replies")

    def _wake_pipe(self) -> None:
        try:
            os.write(self._write, b"\0")
        except BlockingIOError:
            pass  # the pipe is full, so a wake-up is already pending

    def linger(self, timeout: float) -> bool:
        """On the draining thread: wait up to ``timeout`` seconds for another thread's put
        (without the GIL); True once something is queued.

        A call handed to a worker often ends within microseconds (its reply is all that is
        left to send): waiting here for it costs one thread wake-up, while going back to the
        socket costs a wake-up message through it and a pass of the loop besides.
        """
        with self._lock:
            if self._queue:
                return True
            self._lingering = True
        signalled = self._signal.acquire(timeout=timeout)
        if not signalled:
            with self._lock:
                if self._lingering:
                    self._lingering = False
                else:  # a put signalled after the timeout: take the signal back
                    self._signal.acquire()
        return bool(self._queue)

    def drain(self) -> list[Outgoing]:
        if self._pending:
            with self._lock:
                self._pending = False
        if self._piped:  # every time: a byte may land after the flag was cleared
            try:
                while os.read(self._read, 4096):
                    pass
            except BlockingIOError:
                pass
        items = []
        queue = self._queue
        while queue:
            items.append(queue.popleft())
        return items

    def close(self) -> None:
        os.close(self._read)
        os.close(self._write)


class CancelFlag:
    """What ``threading.Event`` offers a call (``is_set``, ``set``, ``wait``), built for the
    common case of a call that is never cancelled and never waits: the event that
    ``wait`` sleeps on is made only when some method first waits."""

    __slots__ = ("_set", "_event", "_lock")

    def __init__(self) -> None:
        self._set = False
        self._event: threading.Event | None = None
        self._lock = threading.Lock()

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        with self._lock:
            self._set = True
            event = self._event
        if event is not None:
            event.set()

    def wait(self, timeout: float | None = None) -> bool:
        with self._lock:
            if self._event is None:
                self._event = threading.Event()
                if self._set:
                    self._event.set()
            event = self._event
        return event.wait(timeout)


class Call:
    """One call_request from arrival to its terminal message."""

    __slots__ = (
        "request_id",
        "ident",
        "method",
        "cancel_event",
        "cancel_reason",
        "_codec",
        "_outbox",
        "_on_finish",
        "max_bytes",
        "_lock",
        "_seq",
        "started",
        "finished",
    )

    def __init__(
        self,
        request_id: str,
        ident: bytes,
        method: str,
        codec: Codec,
        outbox: Outbox,
        on_finish: Callable[[Call], None],
        max_bytes: int | None = None,
    ) -> None:
        self.request_id = request_id
        self.ident = ident
        self.method = method
        self.cancel_event = CancelFlag()
        self.cancel_reason = "cancel_request"
        self._codec = codec
        self._outbox = outbox
        self._on_finish = on_finish
        # Largest message the client accepts: nothing larger is sent for this call.
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._seq = 0
        self.started = False
        self.finished = False

    def start(self) -> bool:
        """Mark as running; False if it already ended (cancelled before it started)."""
        with self._lock:
            if self.finished:
                return False
            self.started = True
            return True

    def emit(self, type: str, data: dict[str, Any]) -> None:
        with self._lock:
            if self.finished:
                return
            content = {"seq": self._seq, "type": type, "data": data}
            frames = self._codec.build("event", content, self.request_id)  # may raise TypeError
            nbytes = message_bytes(frames)
            if self.max_bytes is not None and nbytes > self.max_bytes:
                raise MessageTooLarge(f"the {type!r} event", nbytes, self.max_bytes)
            self._seq += 1
            self._outbox.put(self.ident, frames)

    def finish(self, msg_type: str, content: dict[str, Any]) -> bool:
        """Send the terminal message; False (and nothing sent) if one was sent already."""
        with self._lock:
            if self.finished:
                return False
            try:
                frames = self._codec.build(msg_type, content, self.request_id)
            except Exception as exc:  # noqa: BLE001 - whatever it is, the call gets its end
                frames = self._codec.error(
                    self.request_id, type(exc).__name__, f"cannot send the {msg_type}: {exc}"
                )
            nbytes = message_bytes(frames)
            if self.max_bytes is not None and nbytes > self.max_bytes:
                # Never send what the client would drop (it would wait for ever): a small
                # error that names the size and the limit goes instead.
                too_large = MessageTooLarge(
                    f"the {msg_type} of {self.method}", nbytes, self.max_bytes
                )
                log.warning("%s %s: %s", self.method, self.request_id[:8], too_large)
                frames = self._codec.build("error", too_large.content(), self.request_id)
            self.finished = True
            # Leave the table before the client can see the end (a heartbeat right after
            # the terminal message must not list this call).
            self._on_finish(self)
            self._outbox.put(self.ident, frames, final=True)
        return True

    def fail(self, ename: str, evalue: str, tb: list[str], code: str | None = None) -> bool:
        content: dict[str, Any] = {"ename": ename, "evalue": evalue, "traceback": tb}
        if code is not None:
            content["code"] = code
        return self.finish("error", content)

    def cancel(self, reason: str) -> None:
        """Ask the call to stop; one that has not started ends at once."""
        with self._lock:
            self.cancel_reason = reason
            self.cancel_event.set()
            started = self.started
        if not started:
            self.finish("cancelled", {"reason": reason})


class CallTable:
    def __init__(self) -> None:
        self._calls: dict[str, Call] = {}
        self._lock = threading.Lock()
        self._empty = threading.Condition(self._lock)
        self._waiting = 0  # threads in wait_empty: no one to notify otherwise

    def add(self, call: Call) -> None:
        with self._lock:
            self._calls[call.request_id] = call

    def remove(self, call: Call) -> None:
        with self._lock:
            self._calls.pop(call.request_id, None)
            if not self._calls and self._waiting:
                self._empty.notify_all()

    def get(self, request_id: str) -> Call | None:
        with self._lock:
            return self._calls.get(request_id)

    def __len__(self) -> int:
        return len(self._calls)

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._calls)

    def all(self) -> list[Call]:
        with self._lock:
            return list(self._calls.values())

    def wait_empty(self, timeout: float) -> bool:
        with self._lock:
            self._waiting += 1
            try:
                return self._empty.wait_for(lambda: not self._calls, timeout)
            finally:
                self._waiting -= 1


def message_bytes(frames: list[Buffer]) -> int:
    """Size of a message as the receiver's limit counts it: all its frames together."""
    return sum([len(f) if type(f) is bytes else memoryview(f).nbytes for f in frames])


def _traceback_lines(exc: BaseException) -> list[str]:
    return "".join(traceback.format_exception(exc)).rstrip("\n").split("\n")


def run_call(call: Call, spec: MethodSpec, raw_params: Any, objects: ObjectStore) -> None:
    """Worker body: validate, run, send exactly one terminal message."""
    if not call.start():
        return
    ctx = CallContext(call.request_id, objects, call.emit, call.cancel_event, spec.name)
    try:
        params = spec.validate(raw_params)
        ctx.check_cancelled()
        value = spec.func(ctx, params)
        call.finish("result", {"value": value})
    except Cancelled:
        call.finish("cancelled", {"reason": call.cancel_reason})
    except MessageTooLarge as exc:
        call.finish("error", exc.content())
    except NearposError as exc:
        call.fail(type(exc).__name__, str(exc), [], exc.code)
    except BaseException as exc:  # noqa: BLE001 - every failure becomes an error message
        code = getattr(exc, "code", None)
        log.info("%s %s raised %s: %s", spec.name, call.request_id[:8], type(exc).__name__, exc)
        call.fail(
            type(exc).__name__,
            str(exc),
            _traceback_lines(exc),
            code if isinstance(code, str) else None,
        )
