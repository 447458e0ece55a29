"""ZeroMQ front end: a request ROUTER on an IO thread, a control ROUTER on its own thread.

pyzmq sockets are not thread-safe, so each socket is used by the one thread that owns it;
workers hand their messages to the IO thread through the core's ``Outbox``.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import zmq

from ..protocol.replay import ReplayGuard
from ..protocol.wire import Buffer, socket_frame_limit
from ..server import RuntimeCore

log = logging.getLogger("nearpos_runtime.server")
POLL_MS = 100
FINAL_LINGER_MS = 1000


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
        return sock

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
        outbox = self.core.outbox
        outbox.drained_on_this_thread()  # inline calls' replies go out in the _flush below
        poller = zmq.Poller()
        poller.register(self.request, zmq.POLLIN)
        poller.register(outbox.fileno(), zmq.POLLIN)
        try:
            while not self._io_stop.is_set():
                ready = dict(poller.poll(POLL_MS))
                if self.request in ready:
                    for _ in range(256):  # bounded, so replies keep flowing under load
                        # Asking EVENTS is cheaper than a receive that raises zmq.Again.
                        if not self.request.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                            break
                        frames = self.request.recv_multipart(zmq.NOBLOCK, copy=False)
                        self._handle(frames)
                self._flush()
            self._flush()
        except Exception:  # the socket or the loop itself failed: stop, exit non-zero
            log.exception("request loop failed")
            self.failed = True
            self._shutdown_asked.set()
        finally:
            self.request.setsockopt(zmq.LINGER, FINAL_LINGER_MS)
            self.request.close()

    def _handle(self, frames: list[zmq.Frame]) -> None:
        try:
            self.core.on_request(frames[0].bytes, [f.buffer for f in frames[1:]])
        except Exception:  # on_request answers its own failures: this is the last guard
            log.exception("a request could not be handled")

    def _flush(self) -> None:
        for ident, frames in self.core.outbox.drain():
            try:
                self.request.send_multipart([ident, *frames], copy=False)
            except zmq.ZMQError:
                raise  # the socket is unusable: a failure of the loop
            except Exception:  # one unsendable message must not stop the others
                log.exception("a reply could not be sent")

    # -- control channel (control thread) -----------------------------------------------

    def _control_loop(self) -> None:
        poller = zmq.Poller()  # one for the loop (socket.poll builds one per call)
        poller.register(self.control, zmq.POLLIN)
        try:
            while True:
                if self._shutdown_asked.is_set():
                    self.core.cancel_all()
                    self._stop(None)
                    return
                if not poller.poll(POLL_MS):
                    continue
                frames = self.control.recv_multipart(copy=False)
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
        self.control.send_multipart([ident, *frames], copy=False)

    def _stop(self, reply: tuple[bytes, list[Buffer]] | None) -> None:
        """After the calls were cancelled: answer, stop the IO thread, close the sockets."""
        if reply is not None:
            self._reply(*reply)
        self._io_stop.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)
        self.control.setsockopt(zmq.LINGER, FINAL_LINGER_MS)
        self.control.close()
        self.stopped.set()

    def close(self) -> None:
        """After ``stopped``: wait for queued messages (bounded by linger), free resources."""
        self.core.pool.shutdown(wait=False, cancel_futures=True)
        self.ctx.term()
        self.core.outbox.close()
