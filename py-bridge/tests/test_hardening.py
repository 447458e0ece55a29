"""One hostile or unlucky message must never end the runtime, nor leave a call unanswered.

A real ``python -m nearpos_runtime serve`` (1 MiB message limit) driven by real DEALER
sockets: hostile tensor shapes, deep nesting, fuzzed authenticated messages, replies over
the limit, frames far over the limit.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from nearpos_runtime.client import Client, Reply
from nearpos_runtime.protocol.tensors import MAX_DEPTH
from nearpos_runtime.protocol.wire import TAG, dumps, make_header, signature
from nearpos_runtime.testing import RuntimeProcess, spawn_runtime

LIMIT = 1 << 20


@pytest.fixture(scope="module")
def runtime() -> Iterator[RuntimeProcess]:
    rt = spawn_runtime(["--max-message-bytes", str(LIMIT)])
    yield rt
    rt.stop()


@pytest.fixture
def client(runtime: RuntimeProcess) -> Iterator[Client]:
    with Client(runtime.connection, runtime.key, timeout=20) as c:
        yield c


def send_signed(
    client: Client,
    content: bytes,
    buffers: list[dict[str, Any]] | None = None,
    frames: list[bytes] | None = None,
    channel: str = "request",
    msg_type: str = "call_request",
) -> str:
    """A genuine, authenticated message whose content bytes and buffer descriptors are
    whatever the test says; returns its msg_id."""
    header = make_header(msg_type, client.codec.session, parent_id=None, buffers=buffers or [])
    head = dumps(header)
    client.send_raw(
        channel, [TAG, signature(client.key, [TAG, head, content]), head, content, *(frames or [])]
    )
    return header["msg_id"]


def answer(client: Client, msg_id: str, channel: str = "request") -> Reply:
    while True:
        reply = client.recv(channel, timeout=10)
        if reply.header["parent_id"] == msg_id:
            return reply


def echo_content(params_json: bytes) -> bytes:
    return b'{"method":"echo","params":' + params_json + b"}"


def still_serving(client: Client, runtime: RuntimeProcess) -> None:
    assert client.call("echo", {"still": "serving"}) == {"still": "serving"}
    assert client.heartbeat()["time"]
    assert runtime.proc.poll() is None, runtime.stderr()[-3000:]


HOSTILE_SHAPES: list[tuple[str, Any, int]] = [
    # (dtype, shape, frame length): every one authenticated, every one answered
    ("float32", [2**53 - 1, 2**53 - 1, 0], 0),
    ("float32", [2**62, 2**62, 0], 0),
    ("float32", [2**64, 0], 0),
    ("int64", [0, 2**63], 0),
    ("float32", [-1], 0),
    ("float32", [1] * 33, 4),
    ("float32", [True, 1], 4),
    ("float32", [1.0], 4),
    ("float32", "4", 16),
    ("uint8", [2**40], 0),
]


@pytest.mark.parametrize(("dtype", "shape", "nbytes"), HOSTILE_SHAPES)
def test_hostile_tensor_shapes_are_answered(
    client: Client, runtime: RuntimeProcess, dtype: str, shape: Any, nbytes: int
) -> None:
    desc = {"dtype": dtype, "shape": shape, "nbytes": nbytes}
    msg_id = send_signed(client, echo_content(b'{"x":{"$tensor":0}}'), [desc], [b"\0" * nbytes])
    reply = answer(client, msg_id)
    assert reply.msg_type == "error" and reply.content["ename"] == "ProtocolError", reply.content
    assert reply.content["code"] == "bad_tensor"
    assert "header.buffers[0]" in reply.content["evalue"]
    still_serving(client, runtime)


@pytest.mark.parametrize("depth", [MAX_DEPTH, 900, 100_000])
def test_deep_nesting_is_answered(client: Client, runtime: RuntimeProcess, depth: int) -> None:
    # content is at depth 1, params at 2, then depth - 2 arrays: `depth` levels in all
    arrays = depth - 2
    params = b'{"v":' + b"[" * arrays + b"0" + b"]" * arrays + b"}"
    msg_id = send_signed(client, echo_content(params))
    reply = answer(client, msg_id)
    if depth <= MAX_DEPTH:
        assert reply.msg_type == "result"
    else:
        assert reply.msg_type == "error" and reply.content["code"] == "malformed", reply.content
        assert f"deeper than {MAX_DEPTH}" in reply.content["evalue"]
    # the same on the control channel
    msg_id = send_signed(
        client,
        b'{"x":' + b"[" * depth + b"]" * depth + b"}",
        channel="control",
        msg_type="heartbeat_request",
    )
    reply = answer(client, msg_id, "control")
    assert reply.msg_type == ("heartbeat_reply" if depth + 1 <= MAX_DEPTH else "error")
    still_serving(client, runtime)


def _fuzz_value(rng: random.Random, depth: int) -> Any:
    kind = rng.randrange(8 if depth < 120 else 4)
    if kind == 0:
        return rng.choice([0, -1, 2**63, 2**64 + 1, 1e308, -0.0, True, None])
    if kind == 1:
        return rng.choice(["", "é", "\u0000", "x" * rng.randrange(100)])
    if kind == 2:
        return {"$tensor": rng.choice([0, 1, -1, 2**70, "0", None, 0.5])}
    if kind == 3:
        return rng.choice([[], {}, {"$tensor": {"type": "integer"}}])
    if kind in (4, 5):
        return [_fuzz_value(rng, depth + 1) for _ in range(rng.randrange(1, 3))]
    return {str(rng.randrange(5)): _fuzz_value(rng, depth + 1) for _ in range(rng.randrange(1, 3))}


def _fuzz_descriptor(rng: random.Random) -> tuple[Any, bytes]:
    dims = [
        rng.choice([0, 1, 2, 3, -1, 2**31, 2**53 - 1, 2**53, 2**63, 2**64, 0.5, True])
        for _ in range(rng.choice([0, 1, 2, 3, 33, 64]))
    ]
    dtype = rng.choice(["float32", "bool", "int64", "bfloat16", "complex64", 7, None])
    nbytes = rng.choice([0, 1, 4, 8, 16, -4, 2**64, None, "8"])
    desc: Any = {"dtype": dtype, "shape": dims, "nbytes": nbytes}
    if rng.random() < 0.1:
        desc = rng.choice([[], "x", None, {"shape": dims}])
    frame = b"\1" * rng.choice([0, 1, 4, 8, 16])
    return desc, frame


def test_fuzzed_messages_each_get_one_answer(client: Client, runtime: RuntimeProcess) -> None:
    rng = random.Random(20261201)
    methods = ["echo", "bytes_in", "bytes_out", "release", "nope", 3, None]
    for _ in range(150):
        pairs = [_fuzz_descriptor(rng) for _ in range(rng.randrange(3))]
        descs, frames = [d for d, _ in pairs], [f for _, f in pairs]
        content: Any = {"method": rng.choice(methods), "params": _fuzz_value(rng, 2)}
        if rng.random() < 0.1:  # (content that is not an object is dropped: tested elsewhere)
            content = {rng.choice(["method", "params", "x"]): _fuzz_value(rng, 2)}
        text = json.dumps(content).encode()
        if rng.random() < 0.2:
            depth = rng.choice([63, 65, 200, 5000])
            text = b'{"method":"echo","params":{"d":' + b"[" * depth + b"]" * depth + b"}}"
        msg_id = send_signed(client, text, descs, frames)
        try:
            reply = answer(client, msg_id)
        except TimeoutError:
            pytest.fail(f"no answer to {text[:200]!r} with {descs!r}")
        assert reply.msg_type in ("result", "error"), reply
        assert runtime.proc.poll() is None, runtime.stderr()[-3000:]
    still_serving(client, runtime)


def test_a_reply_over_the_limit_becomes_a_small_error(
    client: Client, runtime: RuntimeProcess
) -> None:
    request_id = client.submit("bytes_out", {"nbytes": 8 << 20})
    outcome = client.wait(request_id, timeout=10)
    assert outcome.terminal is not None and outcome.terminal.msg_type == "error"
    content = outcome.terminal.content
    assert content["ename"] == "MessageTooLarge" and content["code"] == "message_too_large"
    assert content["max_message_bytes"] == LIMIT and content["nbytes"] > 8 << 20
    assert str(LIMIT) in content["evalue"] and str(content["nbytes"]) in content["evalue"]
    still_serving(client, runtime)


def test_a_client_with_a_smaller_limit_gets_errors_instead_of_larger_replies(
    client: Client, runtime: RuntimeProcess
) -> None:
    hello = client.control("hello_request", {"client": "t", "max_message_bytes": 10_000}).content
    assert hello["max_message_bytes"] == LIMIT
    content = client.wait(client.submit("bytes_out", {"nbytes": 20_000})).terminal
    assert content is not None and content.content["ename"] == "MessageTooLarge"
    assert content.content["max_message_bytes"] == 10_000
    assert client.call("bytes_out", {"nbytes": 8_000}).numel() == 2_000


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_a_frame_far_over_the_limit_is_not_taken_in(
    client: Client, runtime: RuntimeProcess
) -> None:
    size = 256 << 20
    before_peak = _peak_rss(runtime.proc.pid)
    before_count = client.heartbeat()["dropped"]["oversized"]
    ctx = zmq.Context.instance()
    hostile = ctx.socket(zmq.DEALER)
    hostile.setsockopt(zmq.LINGER, 0)
    monitor = hostile.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    hostile.connect(runtime.connection["request"])
    try:
        payload = bytearray(size)  # zero pages: costs this process nothing until sent
        hostile.send_multipart([TAG, b"0" * 64, b"{}", b"{}", payload], copy=False)
        # Either ZeroMQ cuts the connection (the limit is a socket option) or the whole
        # message was taken in and then dropped as oversized.
        deadline = time.monotonic() + 20
        cut = False
        while time.monotonic() < deadline:
            if monitor.poll(100):
                cut = recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED
                break
            if client.heartbeat()["dropped"]["oversized"] > before_count:
                break
    finally:
        hostile.disable_monitor()
        monitor.close()
        hostile.close()
    grew = _peak_rss(runtime.proc.pid) - before_peak
    assert grew < size // 8, f"peak RSS grew by {grew >> 20} MiB for a {size >> 20} MiB frame"
    assert cut
    still_serving(client, runtime)


def test_an_event_over_the_limit_raises_in_the_method() -> None:
    from nearpos_runtime.calls import Call, Outbox
    from nearpos_runtime.errors import MessageTooLarge
    from nearpos_runtime.protocol.messages import Codec

    outbox = Outbox()
    try:
        call = Call(
            "r" * 32,
            b"id",
            "m",
            Codec(os.urandom(32), "s" * 32, False),
            outbox,
            lambda _call: None,
            max_bytes=2_000,
        )
        call.emit("small", {"x": 1})
        with pytest.raises(MessageTooLarge, match="more than max_message_bytes \\(2000\\)"):
            call.emit("big", {"x": "y" * 5_000})
        call.emit("small", {"x": 2})  # seq stays gapless: 0, 1
        assert [json.loads(bytes(f[3]))["seq"] for _, f in outbox.drain()] == [0, 1]
    finally:
        outbox.close()


def test_a_failure_of_the_io_loop_itself_stops_the_server_as_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from nearpos_runtime import methods  # noqa: F401  (the hello lists them)
    from nearpos_runtime.transports.zmq_io import ZmqServer

    server = ZmqServer(os.urandom(32), signed_buffers=False, max_message_bytes=LIMIT)
    server.request.bind("tcp://127.0.0.1:*")
    server.control.bind("tcp://127.0.0.1:*")

    def broken() -> list[Any]:
        raise RuntimeError("the outbox broke")

    monkeypatch.setattr(server.core.outbox, "drain", broken)
    server.start()
    try:
        assert server.stopped.wait(10)
        assert server.failed  # __main__ then exits with EXIT_FAULT, not 0
    finally:
        server.close()
