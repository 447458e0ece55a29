"""ZeroMQ front end: a request ROUTER on an IO thread, a control ROUTER on its own thread.

pyzmq sockets are not thread-safe, so each socket is used by the one thread that owns it;
workers hand their messages to the IO thread through the core's ``Outbox``.

Each loop blocks in a plain receive on its socket (what a bare pyzmq echo does), not in a
poll over several sources: a poll costs a system call and a pass through Python more per
message. Workers wake the IO thread by a message of their own on the request socket, from
an in-process DEALER whose routing id no client can take (it is connected, and checked,
before the socket is bound anywhere else).
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from typing import Any

import zmq

from ..protocol.replay import ReplayGuard
from ..protocol.wire import Buffer, socket_frame_limit
from ..server import RuntimeCore, name_os_thread

log = logging.getLogger("nearpos_runtime.server")
# How long a loop blocks in one receive before it looks at its stop flag (and the IO loop
# at its outbox: a backstop, since workers wake it).
POLL_MS = 100
FINAL_LINGER_MS = 1000
# How long the IO thread waits for the reply of the only call in flight after handing it
# to a worker, before it goes back to its socket (``Outbox.linger``): long enough for a
# call that takes microseconds, short enough that a request arriving meanwhile hardly waits.
LINGER_S = 0.0005
# Routing id of the in-process socket that wakes the IO thread.
WAKE_ID = b"\x00nearpos-wake"


class ZmqServer:
    def __init__(
        self,
        key: bytes,
        *,
        signed_buffers: bool,
        max_message_bytes: int,
        workers: int = 2,
        replay: ReplayGuard | None = None,
    ) -> None:
        self.core = RuntimeCore(
            key,
            signed_buffers=signed_buffers,
            max_message_bytes=max_message_bytes,
            workers=workers,
            replay=replay,
            pid=os.getpid(),
        )
        self.ctx: zmq.Context[Any] = zmq.Context()
        frame_limit = socket_frame_limit(max_message_bytes)
        self.request = self._socket(frame_limit)
        self.control = self._socket(frame_limit)
        self._waker = self._wake_socket()
        self._waker_lock = threading.Lock()  # workers share it: one sender at a time
        self.core.outbox.use_waker(self._wake)
        self._shutdown_asked = threading.Event()
        self._io_stop = threading.Event()
        self.stopped = threading.Event()
        # True once a loop stopped because of a failure of its own (not a shutdown): the
        # process then exits non-zero.
        self.failed = False
        self._threads: list[threading.Thread] = []

    def _socket(self, frame_limit: int) -> zmq.Socket[Any]:
        sock = self.ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)  # never let a close hang the process
        # A frame over this is refused by ZeroMQ as its size arrives, before any allocation.
        sock.setsockopt(zmq.MAXMSGSIZE, frame_limit)
        sock.setsockopt(zmq.RCVTIMEO, POLL_MS)
        return sock

    def _wake_socket(self) -> zmq.Socket[Any]:
        """The DEALER that wakes the IO thread, attached to the request ROUTER before the
        ROUTER is bound to any address: its routing id is then taken, and a client that
        claims the same id later is ignored by the ROUTER."""
        endpoint = f"inproc://nearpos-wake-{secrets.token_hex(8)}"
        self.request.bind(endpoint)
        waker = self.ctx.socket(zmq.DEALER)
        waker.setsockopt(zmq.LINGER, 0)
        waker.setsockopt(zmq.ROUTING_ID, WAKE_ID)
        waker.connect(endpoint)
        waker.send(b"")
        # Once its message is received, the ROUTER has attached it.
        if not self.request.poll(10_000) or self.request.recv_multipart()[0] != WAKE_ID:
            raise RuntimeError("the wake-up socket did not attach")  # pragma: no cover
        return waker

    def _wake(self) -> None:
        """From a worker (``Outbox.put``): a message that ends the IO thread's receive."""
        with self._waker_lock:
            if not self._waker.closed:  # closed: the IO thread is gone, no one to wake
                self._waker.send(b"", zmq.NOBLOCK)

    def start(self) -> None:
        for target, name in (
            (self._io_loop, "nearpos-io"),
            (self._control_loop, "nearpos-control"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def request_shutdown(self) -> None:
        """From a signal handler or another thread: shut down as on shutdown_request."""
        self._shutdown_asked.set()

    # -- request channel (IO thread) ----------------------------------------------------

    def _io_loop(self) -> None:
        name_os_thread("nearpos-io")
        self.core.outbox.drained_on_this_thread()  # inline replies go out in the _flush below
        try:
            while not self._io_stop.is_set():
                try:
                    frames = _recv(self.request)  # blocks (GIL released) up to POLL_MS
                except zmq.Again:
                    frames = None
                if frames is not None:
                    self._handle(frames)
                self._flush()  # inline replies at once; workers' when they woke us
            self._flush()
        except Exception:  # the socket or the loop itself failed: stop, exit non-zero
            log.exception("request loop failed")
            self.failed = True
            self._shutdown_asked.set()
        finally:
            self.request.setsockopt(zmq.LINGER, FINAL_LINGER_MS)
            self.request.close()
            with self._waker_lock:
                self._waker.close()

    def _handle(self, frames: list[zmq.Frame]) -> None:
        ident = frames[0].bytes
        if ident == WAKE_ID:
            return  # a worker's wake-up: the _flush that follows sends what it queued
        try:
            pooled = self.core.on_request(ident, [f.buffer for f in frames[1:]])
        except Exception:  # on_request answers its own failures: this is the last guard
            log.exception("a request could not be handled")
            return
        if pooled and len(self.core.calls) == 1:
            # The only call in flight went to a worker: its client waits for it alone.
            self.core.outbox.linger(LINGER_S)

    def _flush(self) -> None:
        for ident, frames in self.core.outbox.drain():
            try:
                _send(self.request, ident, frames)
            except zmq.ZMQError:
                raise  # the socket is unusable: a failure of the loop
            except Exception:  # one unsendable message must not stop the others
                log.exception("a reply could not be sent")

    # -- control channel (control thread) -----------------------------------------------

    def _control_loop(self) -> None:
        name_os_thread("nearpos-control")
        try:
            while True:
                if self._shutdown_asked.is_set():
                    self.core.cancel_all()
                    self._stop(None)
                    return
                try:
                    frames = _recv(self.control)  # blocks up to POLL_MS
                except zmq.Again:
                    continue
                try:
                    outcome = self.core.on_control([f.buffer for f in frames[1:]])
                except Exception:  # on_control answers its own failures: the last guard
                    log.exception("a control message could not be handled")
                    continue
                ident = frames[0].bytes
                if outcome.shutdown:
                    self._stop((ident, outcome.reply or []))
                    return
                if outcome.reply is not None:
                    self._reply(ident, outcome.reply)
        except Exception:  # the socket or the loop itself failed: stop, exit non-zero
            log.exception("control loop failed")
            self.failed = True
            self.core.cancel_all()
            self._stop(None)

    def _reply(self, ident: bytes, frames: list[Buffer]) -> None:
        _send(self.control, ident, frames)

    def _stop(self, reply: tuple[bytes, list[Buffer]] | None) -> None:
        """After the calls were cancelled: answer, stop the IO thread, close the sockets."""
        if reply is not None:
            self._reply(*reply)
        self._io_stop.set()
        self._wake()  # the IO thread need not wait out its receive
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)
        self.control.setsockopt(zmq.LINGER, FINAL_LINGER_MS)
        self.control.close()
        self.stopped.set()

    def close(self) -> None:
        """After ``stopped``: wait for queued messages (bounded by linger), free resources."""
        self.core.pool.shutdown(wait=False, cancel_futures=True)
        with self._waker_lock:
            self._waker.close()  # (closed already when the IO thread ran)
        self.ctx.term()
        self.core.outbox.close()


def _recv(sock: zmq.Socket[Any]) -> list[zmq.Frame]:
    """One multipart message as Frames (no copy: tensors stay in ZeroMQ's buffers).
    ``recv_multipart`` without its per-part ``getsockopt(RCVMORE)``: a Frame knows."""
    frame = sock.recv(copy=False)
    frames = [frame]
    while frame.more:
        frame = sock.recv(copy=False)
        frames.append(frame)
    return frames


def _send(sock: zmq.Socket[Any], ident: bytes, frames: list[Buffer]) -> None:
    """``send_multipart([ident, *frames], copy=False)`` without its per-call type checks
    (the frames are ours: bytes and memoryviews)."""
    for frame in frames:  # check them all first: a part sent cannot be taken back
        if type(frame) is not bytes and type(frame) is not memoryview:
            memoryview(frame)  # TypeError for what is not a buffer
    send = sock.send
    send(ident, zmq.SNDMORE)
    last = len(frames) - 1
    for i, frame in enumerate(frames):
        # bytes (the JSON frames) go the copying way directly; buffers (tensors) without a
        # copy when large (pyzmq copies below its copy_threshold either way)
        send(frame, zmq.SNDMORE if i < last else 0, copy=type(frame) is bytes)
