"""The pythonia front end driven the way the TS transport drives it: base64 frames in
through ``submit``, JSON out of ``poll``, with real signed messages and real methods."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from nearpos_runtime import methods  # noqa: F401  (registers the built-in methods)
from nearpos_runtime.protocol.messages import Codec
from nearpos_runtime.protocol.replay import ReplayGuard
from nearpos_runtime.protocol.tensors import decode_buffers, decode_value
from nearpos_runtime.protocol.wire import TAG, dumps, make_header, signature, verify
from nearpos_runtime.transports.pythonia_io import PythoniaServer

ENTRY = Path(__file__).resolve().parents[1] / "nearpos_runtime" / "transports" / "pythonia_entry.py"


class Peer:
    """The client side: signs, submits, polls and checks replies like ts/ does."""

    def __init__(self, server: PythoniaServer, key: bytes) -> None:
        self.server = server
        self.key = key
        self.codec = Codec(key, secrets.token_hex(16), server.core.signed_buffers)
        self.replay = ReplayGuard()
        self.inbox: list[tuple[str, dict, dict]] = []
        self.logs: list[str] = []
        self.stopped = False

    def send(self, channel: str, msg_type: str, content: dict) -> str:
        frames = self.codec.build(msg_type, content)
        self.send_raw(channel, [bytes(f) for f in frames])
        return json.loads(bytes(frames[2]))["msg_id"]

    def send_raw(self, channel: str, frames: list[bytes]) -> None:
        self.server.submit(channel, [base64.b64encode(f).decode() for f in frames])

    def pump(self, wait: float = 0.02) -> None:
        out = json.loads(self.server.poll(wait))
        self.logs.extend(out["log"])
        self.stopped = self.stopped or out["stopped"]
        for channel, frames_b64 in out["m"]:
            frames = [base64.b64decode(f) for f in frames_b64]
            message = verify(
                self.key, frames, 2**62, signed_buffers=self.server.core.signed_buffers
            )
            self.replay.check(message.msg_id, message.header["date"])
            content = decode_value(message.content, decode_buffers(message.header, message.buffers))
            self.inbox.append((channel, message.header, content))

    def reply_to(self, msg_id: str, timeout: float = 10) -> tuple[str, dict, dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for item in self.inbox:
                if item[1]["parent_id"] == msg_id and item[1]["msg_type"] != "event":
                    self.inbox.remove(item)
                    return item
            self.pump()
        raise TimeoutError(f"no reply to {msg_id}")


@pytest.fixture
def peer() -> Iterator[Peer]:
    key = os.urandom(32)
    server = PythoniaServer(
        key, signed_buffers=False, max_message_bytes=1_000_000, workers=2, pid=os.getpid()
    )
    yield Peer(server, key)
    server.close()


def test_hello_and_echo_with_tensors(peer: Peer) -> None:
    _, header, hello = peer.reply_to(peer.send("control", "hello_request", {"client": "t"}))
    assert header["msg_type"] == "hello_reply" and hello["pid"] == os.getpid()
    assert "echo" in {m["name"] for m in hello["methods"]}
    params = {"f": torch.randn(3, 2), "b": torch.tensor([True, False]), "e": torch.zeros(0, 3)}
    channel, header, content = peer.reply_to(
        peer.send("request", "call_request", {"method": "echo", "params": params})
    )
    assert channel == "request" and header["msg_type"] == "result"
    for name, tensor in params.items():
        assert torch.equal(content["value"][name], tensor)


def test_events_cancel_and_heartbeat(peer: Peer) -> None:
    call_id = peer.send(
        "request", "call_request", {"method": "sleep", "params": {"seconds": 30, "tick": 0.02}}
    )
    while not any(h["msg_type"] == "event" for _, h, _ in peer.inbox):
        peer.pump()
    _, _, beat = peer.reply_to(peer.send("control", "heartbeat_request", {}))
    assert beat["running"] == [call_id]
    _, _, cancel = peer.reply_to(peer.send("control", "cancel_request", {"request_id": call_id}))
    assert cancel == {"found": True}
    _, header, content = peer.reply_to(call_id)
    assert header["msg_type"] == "cancelled" and content == {"reason": "cancel_request"}
    seqs = [c["seq"] for _, h, c in peer.inbox if h["parent_id"] == call_id]
    assert seqs == list(range(len(seqs))) and seqs


def test_hostile_frames_are_dropped_and_counted(peer: Peer) -> None:
    good = [bytes(f) for f in peer.codec.build("call_request", {"method": "echo", "params": {}})]
    peer.send_raw("request", [good[0], b"0" * 64, *good[2:]])  # bad signature
    peer.server.submit("request", ["not base64!!", "x"])  # malformed
    peer.send_raw("request", good)
    peer.send_raw("request", good)  # replayed
    header = make_header("call_request", "s", parent_id=None)
    huge = [TAG, dumps(header), b"{" + b" " * 1_000_001 + b"}"]
    peer.send_raw("request", [huge[0], signature(peer.key, huge), *huge[1:]])  # oversized
    forged = Codec(os.urandom(32), "x", False).build("shutdown_request", {})
    peer.send_raw("control", [bytes(f) for f in forged])  # wrong key: no shutdown
    _, _, beat = peer.reply_to(peer.send("control", "heartbeat_request", {}))
    assert beat["dropped"] == {"malformed": 1, "oversized": 1, "bad_signature": 2, "replayed": 1}
    results = [h for _, h, _ in peer.inbox if h["msg_type"] == "result"]
    assert len(results) == 1 and not peer.stopped


def test_hostile_shapes_and_nesting_are_answered_and_serving_goes_on(peer: Peer) -> None:
    def send(content: bytes, buffers: list[dict], frames: list[bytes]) -> dict:
        header = make_header("call_request", peer.codec.session, parent_id=None, buffers=buffers)
        head = dumps(header)
        peer.send_raw(
            "request", [TAG, signature(peer.key, [TAG, head, content]), head, content, *frames]
        )
        _, reply_header, reply = peer.reply_to(header["msg_id"])
        assert reply_header["msg_type"] == "error", reply
        return reply

    huge = {"dtype": "float32", "shape": [2**53 - 1, 2**53 - 1, 0], "nbytes": 0}
    reply = send(b'{"method":"echo","params":{"x":{"$tensor":0}}}', [huge], [b""])
    assert reply["code"] == "bad_tensor"
    deep = b'{"method":"echo","params":{"v":' + b"[" * 900 + b"]" * 900 + b"}}"
    assert send(deep, [], [])["code"] == "malformed"
    _, header, value = peer.reply_to(
        peer.send("request", "call_request", {"method": "echo", "params": {"ok": 1}})
    )
    assert header["msg_type"] == "result" and value == {"value": {"ok": 1}}


def test_unknown_channel_is_refused(peer: Peer) -> None:
    with pytest.raises(ValueError, match="channel must be one of request, control"):
        peer.server.submit("data", [])


def test_shutdown_cancels_then_reports_stopped(peer: Peer) -> None:
    call_id = peer.send("request", "call_request", {"method": "sleep", "params": {"seconds": 30}})
    _, header, content = peer.reply_to(peer.send("control", "shutdown_request", {}))
    assert header["msg_type"] == "shutdown_reply" and content["cancelled"] == [call_id]
    _, header, _ = peer.reply_to(call_id)
    assert header["msg_type"] == "cancelled"
    deadline = time.monotonic() + 5
    while not peer.stopped and time.monotonic() < deadline:
        peer.pump()
    assert peer.stopped
    late = peer.send("request", "call_request", {"method": "echo", "params": {}})
    peer.pump()
    assert all(h["parent_id"] != late for _, h, _ in peer.inbox)


def test_entry_exits_when_its_reader_ends_even_with_a_call_running() -> None:
    """pythonia's reader is the main thread; it ends at EOF of Node's pipe. A worker busy
    in a method must not keep the process alive."""
    key = os.urandom(32)
    script = textwrap.dedent(
        f"""
        import base64, importlib.util, json, sys, time
        spec = importlib.util.spec_from_file_location("pythonia_entry.py", {str(ENTRY)!r})
        entry = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(entry)
        from nearpos_runtime.protocol.messages import Codec
        sid = json.loads(entry.open_server({key.hex()!r}, '{{"workers": 1}}'))["id"]
        frames = Codec(bytes.fromhex({key.hex()!r}), "c", False).build(
            "call_request", {{"method": "sleep", "params": {{"seconds": 60}}}})
        entry.submit(sid, "request", [base64.b64encode(bytes(f)).decode() for f in frames])
        while True:
            out = json.loads(entry.poll(sid, 0.05))
            if any("serving over pythonia" in line for line in out["log"]):
                break
        time.sleep(0.3)
        print("ready", flush=True)  # goes to stderr: stdout is redirected there
        """
    )
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert "ready" in proc.stderr, proc.stderr
    assert proc.stdout == ""
    assert proc.returncode == 1, proc.stderr
    assert time.monotonic() - t0 < 30  # not the 60 s of the sleep


def test_entry_refuses_bad_keys_and_options() -> None:
    script = textwrap.dedent(
        f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location("pythonia_entry.py", {str(ENTRY)!r})
        entry = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(entry)
        for args in (("abc", ""), ("00" * 32, '{{"wrokers": 2}}'), ("00" * 32, '[1]')):
            try:
                entry.open_server(*args)
            except ValueError as exc:
                print("refused:", exc)
        try:
            entry.poll("nope", 0)
        except KeyError as exc:
            print("refused:", exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    lines = [line for line in out.stdout.splitlines() if line.startswith("refused:")]
    assert len(lines) == 4, out.stderr
    assert "64 hex digits" in lines[0]
    assert "wrokers" in lines[1] and "workers" in lines[1]
    assert "JSON object" in lines[2]
    assert "no runtime 'nope'" in lines[3]
