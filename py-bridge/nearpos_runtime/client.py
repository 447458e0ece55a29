"""A small synchronous Python client of the protocol, for tests, benchmarks and debugging.

The TypeScript API is the real client; this one follows the same document.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq

from .protocol.messages import Codec
from .protocol.replay import ReplayGuard
from .protocol.tensors import decode_buffers, decode_value
from .protocol.wire import Buffer, Incoming, verify

TERMINAL = ("result", "error", "cancelled")


@dataclass
class Reply:
    msg_type: str
    content: dict[str, Any]
    header: dict[str, Any]


@dataclass
class CallOutcome:
    request_id: str
    events: list[Reply] = field(default_factory=list)
    terminal: Reply | None = None


class Client:
    def __init__(self, connection: dict[str, Any] | Path, key: bytes, timeout: float = 30) -> None:
        if isinstance(connection, Path):
            connection = json.loads(connection.read_text())
        self.connection = connection
        self.key = key
        self.timeout = timeout
        self.codec = Codec(key, secrets.token_hex(16), bool(connection["signed_buffers"]))
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.sockets: dict[str, zmq.Socket[Any]] = {}
        for channel in ("request", "control"):
            sock = self.ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(connection[channel])
            self.sockets[channel] = sock
        self.replay = ReplayGuard()
        self.pending: dict[str, CallOutcome] = {}

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()
        self.ctx.term()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- low level ------------------------------------------------------------------------

    def send(self, channel: str, msg_type: str, content: dict[str, Any]) -> str:
        frames = self.codec.build(msg_type, content)
        self.send_raw(channel, frames)
        return json.loads(bytes(frames[2]))["msg_id"]

    def send_raw(self, channel: str, frames: list[Buffer]) -> None:
        self.sockets[channel].send_multipart(frames, copy=False)

    def recv(self, channel: str, timeout: float | None = None) -> Reply:
        sock = self.sockets[channel]
        if not sock.poll(int(1000 * (self.timeout if timeout is None else timeout))):
            raise TimeoutError(f"no message on the {channel} channel")
        frames = sock.recv_multipart(copy=False)
        message: Incoming = verify(
            self.key, [f.buffer for f in frames], 2**62, signed_buffers=self.codec.signed_buffers
        )
        self.replay.check(message.msg_id, message.header["date"])
        tensors = decode_buffers(message.header, message.buffers)
        content = decode_value(message.content, tensors)
        return Reply(message.msg_type, content, message.header)

    # -- control ---------------------------------------------------------------------------

    def control(self, msg_type: str, content: dict[str, Any] | None = None) -> Reply:
        msg_id = self.send("control", msg_type, content or {})
        while True:
            reply = self.recv("control")
            if reply.header["parent_id"] == msg_id:
                return reply

    def hello(self) -> dict[str, Any]:
        return self.control("hello_request", {"client": "nearpos-runtime-py"}).content

    def heartbeat(self) -> dict[str, Any]:
        return self.control("heartbeat_request").content

    def cancel(self, request_id: str) -> bool:
        return bool(self.control("cancel_request", {"request_id": request_id}).content["found"])

    # -- calls -----------------------------------------------------------------------------

    def submit(self, method: str, params: dict[str, Any]) -> str:
        msg_id = self.send("request", "call_request", {"method": method, "params": params})
        self.pending[msg_id] = CallOutcome(msg_id)
        return msg_id

    def wait(self, request_id: str, timeout: float | None = None) -> CallOutcome:
        """Collect messages until ``request_id`` has its terminal message."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        outcome = self.pending.setdefault(request_id, CallOutcome(request_id))
        while outcome.terminal is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"call {request_id} did not finish")
            reply = self.recv("request", left)
            target = self.pending.setdefault(reply.header["parent_id"], CallOutcome(request_id))
            if reply.msg_type in TERMINAL:
                target.terminal = reply
            else:
                target.events.append(reply)
        return self.pending.pop(request_id)

    def call(self, method: str, params: dict[str, Any], timeout: float | None = None) -> Any:
        """The call's result value; RuntimeError carrying the error/cancelled content."""
        outcome = self.wait(self.submit(method, params), timeout)
        assert outcome.terminal is not None
        if outcome.terminal.msg_type != "result":
            raise RuntimeError(outcome.terminal.msg_type, outcome.terminal.content)
        return outcome.terminal.content["value"]
