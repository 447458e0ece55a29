"""``@method(inline=True)`` runs on the thread that received the request; others on a worker."""

from __future__ import annotations

import os
import threading
import time

from nearpos_runtime import methods  # noqa: F401  (registers the built-ins)
from nearpos_runtime.context import CallContext
from nearpos_runtime.protocol.messages import Codec
from nearpos_runtime.protocol.wire import verify
from nearpos_runtime.registry import get_method, method
from nearpos_runtime.server import RuntimeCore

KEY = os.urandom(32)
seen: dict[str, int] = {}


@method("test_inline_where", inline=True)
def inline_where(ctx: CallContext, params: dict[str, object]) -> int:
    seen["inline"] = threading.get_ident()
    return 1


@method("test_pooled_where")
def pooled_where(ctx: CallContext, params: dict[str, object]) -> int:
    seen["pooled"] = threading.get_ident()
    return 2


def result_of(frames: list) -> object:
    message = verify(KEY, frames, 2**40, signed_buffers=False)
    assert message.msg_type == "result", message.content
    return message.content["value"]


def test_inline_runs_here_and_replies_before_returning() -> None:
    core = RuntimeCore(KEY, signed_buffers=False, max_message_bytes=2**40, pid=os.getpid())
    client = Codec(KEY, "c" * 32, signed_buffers=False)
    try:
        core.outbox.drained_on_this_thread()
        core.on_request(b"id", client.build("call_request", {"method": "test_inline_where"}))
        out = core.outbox.drain()  # already there: no worker involved
        assert len(out) == 1 and out[0][0] == b"id" and result_of(out[0][1]) == 1
        assert seen["inline"] == threading.get_ident()
        assert core.calls.ids() == []

        core.on_request(b"id", client.build("call_request", {"method": "test_pooled_where"}))
        deadline = time.monotonic() + 5
        while not (out := core.outbox.drain()) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(out) == 1 and result_of(out[0][1]) == 2
        assert seen["pooled"] != threading.get_ident()
    finally:
        core.close()


def test_builtins_marked_inline_are_the_cheap_ones() -> None:
    assert all(get_method(n).inline for n in ("echo", "release", "bytes_in", "bytes_out"))
    assert not get_method("sleep").inline
