"""The server: a request ROUTER on an IO thread, a control ROUTER on its own thread,
method calls on a worker pool. Each socket is used by the one thread that owns it;
workers hand their messages to the IO thread through an ``Outbox``.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import zmq

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
POLL_MS = 100
SHUTDOWN_GRACE_S = 2.0
FINAL_LINGER_MS = 1000


class Server:
    def __init__(
        self,
        key: bytes,
        *,
        signed_buffers: bool,
        max_message_bytes: int,
        workers: int = 2,
        replay: ReplayGuard | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.key = key
        self.session = secrets.token_hex(16)
        self.signed_buffers = signed_buffers
        self.max_message_bytes = max_message_bytes
        self.codec = Codec(key, self.session, signed_buffers)
        self.replay = replay or ReplayGuard()
        self.objects = ObjectStore()
        self.calls = CallTable()
        self.outbox = Outbox()
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nearpos-worker")
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.request = self._socket()
        self.control = self._socket()
        self.dropped = dict.fromkeys(DROP_REASONS, 0)
        self._dropped_lock = threading.Lock()
        self._shutting_down = threading.Event()
        self._io_stop = threading.Event()
        self.stopped = threading.Event()
        self._hello: dict[str, Any] | None = None
        self._threads: list[threading.Thread] = []

    def _socket(self) -> zmq.Socket[Any]:
        sock = self.ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)  # never let a close hang the process
        return sock

    # -- start / stop -------------------------------------------------------------------

    def start(self) -> None:
        self._hello = hello_content(
            self.session, os.getpid(), self.signed_buffers, self.max_message_bytes
        )
        for target, name in (
            (self._io_loop, "nearpos-io"),
            (self._control_loop, "nearpos-control"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def request_shutdown(self) -> None:
        """From a signal handler or another thread: shut down as on shutdown_request."""
        self._shutting_down.set()

    def _count(self, reason: str) -> None:
        with self._dropped_lock:
            self.dropped[reason] += 1

    # -- receiving ----------------------------------------------------------------------

    def _receive(self, frames: list[zmq.Frame]) -> tuple[bytes, Incoming] | None:
        """Checks 1-5; a failing message is counted and dropped (None)."""
        ident = frames[0].bytes
        try:
            message = verify(self.key, [f.buffer for f in frames[1:]], self.max_message_bytes)
            self.replay.check(message.msg_id, message.header["date"])
        except Dropped as exc:
            self._count(exc.reason)
            log.warning("dropped a message: %s", exc)
            return None
        return ident, message

    def _protocol_error(self, message: Incoming, exc: ProtocolError) -> list[Buffer]:
        log.warning("protocol error in %s %s: %s", message.msg_type, message.msg_id[:8], exc)
        return self.codec.error(message.msg_id, "ProtocolError", str(exc), [], exc.code)

    # -- request channel (IO thread) ----------------------------------------------------

    def _io_loop(self) -> None:
        poller = zmq.Poller()
        poller.register(self.request, zmq.POLLIN)
        poller.register(self.outbox.fileno(), zmq.POLLIN)
        try:
            while not self._io_stop.is_set():
                ready = dict(poller.poll(POLL_MS))
                if self.request in ready:
                    for _ in range(256):  # bounded, so replies keep flowing under load
                        try:
                            frames = self.request.recv_multipart(zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        self._on_request(frames)
                self._flush()
            self._flush()
        except Exception:  # pragma: no cover - a bug here must not leave a zombie runtime
            log.exception("request loop failed")
            self._shutting_down.set()
        finally:
            self.request.setsockopt(zmq.LINGER, FINAL_LINGER_MS)
            self.request.close()

    def _flush(self) -> None:
        for ident, frames in self.outbox.drain():
            self.request.send_multipart([ident, *frames], copy=False)

    def _on_request(self, frames: list[zmq.Frame]) -> None:
        received = self._receive(frames)
        if received is None:
            return
        ident, message = received
        try:
            check_msg_type(message.header, "request")
            content = decode_content(message, self.signed_buffers)
            name, params = content.get("method"), content.get("params", {})
            if not isinstance(name, str):
                raise ProtocolError("malformed", "call_request content needs 'method' (a string)")
        except ProtocolError as exc:
            self.outbox.put(ident, self._protocol_error(message, exc))
            return
        call = Call(message.msg_id, ident, name, self.codec, self.outbox, self.calls.remove)
        if self._shutting_down.is_set():
            call.fail("RuntimeShuttingDown", "the runtime is shutting down", [], "shutting_down")
            return
        try:
            spec = get_method(name)
        except NearposError as exc:
            call.fail(type(exc).__name__, str(exc), [], exc.code)
            return
        self.calls.add(call)
        self.pool.submit(run_call, call, spec, params, self.objects)

    # -- control channel (control thread) -----------------------------------------------

    def _control_loop(self) -> None:
        try:
            while True:
                if self._shutting_down.is_set():
                    self._shutdown(None)
                    return
                if not self.control.poll(POLL_MS):
                    continue
                frames = self.control.recv_multipart(copy=False)
                received = self._receive(frames)
                if received is None:
                    continue
                ident, message = received
                if self._on_control(ident, message):
                    return
        except Exception:  # pragma: no cover
            log.exception("control loop failed")
            self._shutdown(None)

    def _reply(self, ident: bytes, frames: list[Buffer]) -> None:
        self.control.send_multipart([ident, *frames], copy=False)

    def _on_control(self, ident: bytes, message: Incoming) -> bool:
        """Serve one control request; True once the runtime has shut down."""
        try:
            check_msg_type(message.header, "control")
            content = decode_content(message, self.signed_buffers)
        except ProtocolError as exc:
            self._reply(ident, self._protocol_error(message, exc))
            return False
        kind, parent = message.msg_type, message.msg_id
        if kind == "hello_request":
            log.info("hello from %s", str(content.get("client", "?"))[:80])
            self._reply(ident, self.codec.build("hello_reply", dict(self._hello or {}), parent))
        elif kind == "heartbeat_request":
            with self._dropped_lock:
                dropped = dict(self.dropped)
            reply = {"time": utc_now_iso(), "running": self.calls.ids(), "dropped": dropped}
            self._reply(ident, self.codec.build("heartbeat_reply", reply, parent))
        elif kind == "cancel_request":
            target = content.get("request_id")
            if not isinstance(target, str):
                err = ProtocolError("malformed", "cancel_request needs 'request_id' (a string)")
                self._reply(ident, self._protocol_error(message, err))
                return False
            call = self.calls.get(target)
            if call is not None:
                call.cancel("cancel_request")
            self._reply(
                ident, self.codec.build("cancel_reply", {"found": call is not None}, parent)
            )
        elif kind == "shutdown_request":
            self._shutdown((ident, parent))
            return True
        return False

    def _shutdown(self, reply_to: tuple[bytes, str] | None) -> None:
        """Cancel every call, answer, stop the IO thread, close the sockets."""
        self._shutting_down.set()
        log.info("shutting down")
        pending = self.calls.all()
        for call in pending:
            call.cancel("shutdown")
        if not self.calls.wait_empty(SHUTDOWN_GRACE_S):
            for call in self.calls.all():  # stuck in C code: end them on their behalf
                call.finish("cancelled", {"reason": "shutdown"})
        if reply_to is not None:
            ident, parent = reply_to
            ids = [c.request_id for c in pending]
            self._reply(ident, self.codec.build("shutdown_reply", {"cancelled": ids}, parent))
        self._io_stop.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)
        self.control.setsockopt(zmq.LINGER, FINAL_LINGER_MS)
        self.control.close()
        self.stopped.set()

    def close(self) -> None:
        """After ``stopped``: wait for queued messages (bounded by linger), free resources."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.ctx.term()
        self.outbox.close()


def remove_paths(paths: list[Path]) -> None:
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
