"""The transport-agnostic core of the runtime: authentication, dispatch of calls to the
worker pool, control requests and the outgoing queue.

A front end (``transports.zmq_io`` for ZeroMQ, ``transports.pythonia_io`` for pythonia)
only moves frames: it hands each incoming message of the request channel to
``on_request`` and each control message to ``on_control``, and sends what the core put in
its ``outbox`` (request channel) or returned (control channel).
"""

from __future__ import annotations

import ctypes
import logging
import queue
import secrets
import sys
import threading
import traceback
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .calls import Call, CallTable, Outbox, run_call
from .errors import NearposError
from .info import hello_content
from .objects import ObjectStore
from .protocol.errors import DROP_REASONS, Dropped, ProtocolError
from .protocol.messages import Codec, check_msg_type, decode_content
from .protocol.replay import ReplayGuard
from .protocol.wire import Buffer, Incoming, utc_now_iso, verify
from .registry import get_method

log = logging.getLogger("nearpos_runtime.server")
SHUTDOWN_GRACE_S = 2.0
# Clients' own message limits (hello_request.max_message_bytes), by client session.
MAX_CLIENT_LIMITS = 1024
# error.code of an answer to a message whose handling failed unexpectedly (a bug)
INTERNAL = "internal_error"


@dataclass
class ControlOutcome:
    """What a front end does after a control message: send ``reply`` (if any) on the
    control channel, then stop serving if ``shutdown``."""

    reply: list[Buffer] | None
    shutdown: bool = False


_PR_SET_NAME = 15
_libc: Any = None


def name_os_thread(name: str) -> None:
    """Give the calling thread ``name`` at the OS level too (Linux; shown by ``top -H``
    and in /proc/PID/task, where per-thread CPU time is read); a no-op elsewhere."""
    global _libc
    if not sys.platform.startswith("linux"):
        return
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        _libc.prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)
    except (OSError, AttributeError):
        pass


class WorkerPool:
    """Threads that run submitted calls in the order submitted.

    A queue and N threads, no futures: a call reports its outcome through its own
    messages, so the per-call bookkeeping of ``concurrent.futures`` (a future with its
    condition, an idle semaphore) would be pure cost. Daemon threads: one stuck in a method
    never keeps the process alive. Threads start with the first call.
    """

    def __init__(self, workers: int, name: str, outbox: Outbox | None = None) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self._size = workers
        self._name = name
        # The outbox whose owed notification each thread settles after every task.
        self._outbox = outbox
        self._queue: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        if not self._threads:
            self._start()
        if self._closed:
            raise RuntimeError("the worker pool is shut down")
        self._queue.put((fn, args))

    def _start(self) -> None:
        with self._lock:
            if self._threads or self._closed:
                return
            for i in range(self._size):
                thread = threading.Thread(target=self._work, name=f"{self._name}-{i}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _work(self) -> None:
        name_os_thread(threading.current_thread().name)
        outbox = self._outbox
        if outbox is not None:
            outbox.defer_final_on_this_thread()
        get = self._queue.get
        while True:
            item = get()
            if item is None:
                return
            fn, args = item
            try:
                fn(*args)
            except BaseException:  # noqa: BLE001 - run_call answers its own failures
                log.exception("a worker task failed")
            finally:
                if outbox is not None:
                    outbox.settle()  # right before blocking in get(): see Outbox.settle
            del item, fn, args  # drop the call's references while idle

    def shutdown(self, wait: bool = False, cancel_futures: bool = True) -> None:
        """Stop the threads once they are idle; with ``cancel_futures`` drop what has not
        started (the ``ThreadPoolExecutor.shutdown`` arguments)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if cancel_futures:
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
        for _ in self._threads:
            self._queue.put(None)
        if wait:
            for thread in self._threads:
                thread.join()


class RuntimeCore:
    """Everything between frames in and frames out; thread-safe where a front end needs it.

    ``on_request`` may run on any one thread; ``on_control`` on any one thread (the
    control thread); workers run calls and put their messages in ``outbox``.
    """

    def __init__(
        self,
        key: bytes,
        *,
        signed_buffers: bool,
        max_message_bytes: int,
        workers: int = 2,
        replay: ReplayGuard | None = None,
        pid: int,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        if len(key) != 32:
            raise ValueError(f"the key must be 32 bytes, got {len(key)}")
        self.key = key
        self.session = secrets.token_hex(16)
        self.signed_buffers = signed_buffers
        self.max_message_bytes = max_message_bytes
        self.codec = Codec(key, self.session, signed_buffers)
        self.replay = replay or ReplayGuard()
        self.objects = ObjectStore()
        self.calls = CallTable()
        self.outbox = Outbox()
        self.pool = WorkerPool(workers, "nearpos-worker", self.outbox)
        self.dropped = dict.fromkeys(DROP_REASONS, 0)
        self._dropped_lock = threading.Lock()
        self.shutting_down = threading.Event()
        self.hello = hello_content(self.session, pid, signed_buffers, max_message_bytes)
        self._client_limits: OrderedDict[str, int] = OrderedDict()
        self._limits_lock = threading.Lock()

    # -- receiving ----------------------------------------------------------------------

    def authenticate(self, frames: Sequence[Buffer]) -> Incoming | None:
        """Checks 1-5 of docs/protocol.md; a failing message is counted and dropped (None).
        ``frames`` excludes any routing identity."""
        try:
            message = verify(
                self.key, frames, self.max_message_bytes, signed_buffers=self.signed_buffers
            )
            self.replay.check(message.msg_id, message.header["date"], when=message.when)
        except Dropped as exc:
            self.count_drop(exc.reason)
            log.warning("dropped a message: %s", exc)
            return None
        except Exception:  # a bug, or a resource failure: still no answer before auth
            self.count_drop("malformed")
            log.exception("dropped a message that failed authentication unexpectedly")
            return None
        return message

    def count_drop(self, reason: str) -> None:
        with self._dropped_lock:
            self.dropped[reason] += 1

    def dropped_counts(self) -> dict[str, int]:
        with self._dropped_lock:
            return dict(self.dropped)

    def _protocol_error(self, message: Incoming, exc: ProtocolError) -> list[Buffer]:
        log.warning("protocol error in %s %s: %s", message.msg_type, message.msg_id[:8], exc)
        return self.codec.error(message.msg_id, "ProtocolError", str(exc), [], exc.code)

    def _internal_error(self, message: Incoming, exc: Exception) -> list[Buffer]:
        """The answer to an authenticated message whose handling failed unexpectedly."""
        log.exception("handling %s %s failed", message.msg_type, message.msg_id[:8])
        lines = "".join(traceback.format_exception(exc)).rstrip("\n").split("\n")
        evalue = f"{type(exc).__name__}: {exc}"[:2000]
        return self.codec.error(message.msg_id, "InternalError", evalue, lines[-50:], INTERNAL)

    def client_limit(self, session: str) -> int:
        """The largest message the client of ``session`` accepts (this runtime's own limit
        unless its hello said less)."""
        with self._limits_lock:
            return min(
                self._client_limits.get(session, self.max_message_bytes), self.max_message_bytes
            )

    def _remember_limit(self, session: str, limit: object) -> None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            return
        with self._limits_lock:
            self._client_limits[session] = limit
            self._client_limits.move_to_end(session)
            while len(self._client_limits) > MAX_CLIENT_LIMITS:
                self._client_limits.popitem(last=False)

    # -- request channel ----------------------------------------------------------------

    def on_request(self, ident: bytes, frames: Sequence[Buffer]) -> bool:
        """One request-channel message from the client known to the front end as ``ident``;
        every answer goes to ``outbox`` with that ident. Whatever fails, an authenticated
        message gets exactly one terminal answer and the runtime keeps serving.

        Returns True when the call went to a worker (its answer comes later)."""
        message = self.authenticate(frames)
        if message is None:
            return False
        try:
            check_msg_type(message.header, "request")
            content = decode_content(message)
            name, params = content.get("method"), content.get("params", {})
            if not isinstance(name, str):
                raise ProtocolError("malformed", "call_request content needs 'method' (a string)")
        except ProtocolError as exc:
            self.outbox.put(ident, self._protocol_error(message, exc))
            return False
        except Exception as exc:  # noqa: BLE001 - one message must not end the runtime
            self.outbox.put(ident, self._internal_error(message, exc))
            return False
        limit = self.client_limit(message.header["session"])
        call = Call(message.msg_id, ident, name, self.codec, self.outbox, self.calls.remove, limit)
        try:
            return self._start(call, name, params)
        except Exception as exc:  # noqa: BLE001
            log.exception("starting %s %s failed", name[:80], message.msg_id[:8])
            # a no-op when the call already sent its terminal message
            call.fail("InternalError", f"{type(exc).__name__}: {exc}"[:2000], [], INTERNAL)
            return False

    def _start(self, call: Call, name: str, params: object) -> bool:
        if self.shutting_down.is_set():
            call.fail("RuntimeShuttingDown", "the runtime is shutting down", [], "shutting_down")
            return False
        try:
            spec = get_method(name)
        except NearposError as exc:
            call.fail(type(exc).__name__, str(exc), [], exc.code)
            return False
        self.calls.add(call)
        if spec.inline:  # microseconds of work: cheaper here than a hop to a worker
            run_call(call, spec, params, self.objects)
            return False
        self.pool.submit(run_call, call, spec, params, self.objects)
        return True

    # -- control channel ----------------------------------------------------------------

    def on_control(self, frames: Sequence[Buffer]) -> ControlOutcome:
        """One control message; a shutdown_request cancels every call before returning."""
        message = self.authenticate(frames)
        if message is None:
            return ControlOutcome(None)
        try:
            return self._control(message)
        except Exception as exc:  # noqa: BLE001 - one message must not end the runtime
            return ControlOutcome(self._internal_error(message, exc))

    def _control(self, message: Incoming) -> ControlOutcome:
        try:
            check_msg_type(message.header, "control")
            content = decode_content(message)
        except ProtocolError as exc:
            return ControlOutcome(self._protocol_error(message, exc))
        kind, parent = message.msg_type, message.msg_id
        if kind == "hello_request":
            log.info("hello from %s", str(content.get("client", "?"))[:80])
            self._remember_limit(message.header["session"], content.get("max_message_bytes"))
            return ControlOutcome(self.codec.build("hello_reply", dict(self.hello), parent))
        if kind == "heartbeat_request":
            reply = {
                "time": utc_now_iso(),
                "running": self.calls.ids(),
                "dropped": self.dropped_counts(),
            }
            return ControlOutcome(self.codec.build("heartbeat_reply", reply, parent))
        if kind == "cancel_request":
            target = content.get("request_id")
            if not isinstance(target, str):
                err = ProtocolError("malformed", "cancel_request needs 'request_id' (a string)")
                return ControlOutcome(self._protocol_error(message, err))
            call = self.calls.get(target)
            if call is not None:
                call.cancel("cancel_request")
            found = {"found": call is not None}
            return ControlOutcome(self.codec.build("cancel_reply", found, parent))
        # shutdown_request: the only one left (check_msg_type refused the others)
        cancelled = self.cancel_all()
        reply = self.codec.build("shutdown_reply", {"cancelled": cancelled}, parent)
        return ControlOutcome(reply, shutdown=True)

    def cancel_all(self) -> list[str]:
        """Refuse new calls, cancel every call, wait up to 2 s, then end the stuck ones on
        their behalf; returns the ids of the calls that were running."""
        self.shutting_down.set()
        log.info("shutting down")
        pending = self.calls.all()
        for call in pending:
            call.cancel("shutdown")
        if not self.calls.wait_empty(SHUTDOWN_GRACE_S):
            for call in self.calls.all():  # stuck in C code: end them on their behalf
                call.finish("cancelled", {"reason": "shutdown"})
        return [c.request_id for c in pending]

    def close(self) -> None:
        """Free the pool (threads stuck in a method are left behind) and the outbox."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.outbox.close()


def remove_paths(paths: list[Path]) -> None:
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
