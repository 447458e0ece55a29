"""A real ``python -m nearpos_runtime serve`` process driven by real DEALER sockets."""

from __future__ import annotations

import os
import time

import pytest
import torch

from nearpos_runtime.client import Client
from nearpos_runtime.protocol.messages import Codec
from nearpos_runtime.protocol.wire import TAG, dumps, encode, make_header, signature
from nearpos_runtime.testing import RuntimeProcess


def result_of(client: Client, method: str, params: dict) -> dict:
    outcome = client.wait(client.submit(method, params))
    assert outcome.terminal is not None
    return {"type": outcome.terminal.msg_type, **outcome.terminal.content}


def test_hello(client: Client, runtime: RuntimeProcess) -> None:
    hello = client.hello()
    assert hello["protocol_version"] == "1.0"
    assert hello["pid"] == runtime.proc.pid == runtime.connection["pid"]
    assert hello["signed_buffers"] is False and hello["max_message_bytes"] == 1_000_000
    assert {"type": "cpu", "index": 0, "name": "cpu"} in hello["devices"]
    methods = {m["name"]: m for m in hello["methods"]}
    for name in ("echo", "sleep", "release", "bytes_in", "bytes_out", "mine", "loss"):
        assert name in methods
    tensor_schema = methods["mine"]["params_schema"]["properties"]["embeddings"]
    assert tensor_schema["properties"] == {"$tensor": {"type": "integer"}}
    plugins = {p["name"]: p for p in hello["plugins"]}
    schema = plugins["np-test"]["config_schema"]["properties"]["positives"]
    assert schema["enum"] == ["all", "nearest"] and schema["default"] == "all"
    assert plugins["np-test"]["module"] == "nptestplug.plugin"
    assert {"name": "np-broken", "error": "ImportError: broken on purpose"} in hello[
        "plugin_errors"
    ]


def test_echo_with_tensors(client: Client) -> None:
    params = {
        "f": torch.randn(4, 3),
        "h": torch.tensor([1.5, -0.5], dtype=torch.bfloat16),
        "i": torch.arange(10, dtype=torch.int64).reshape(2, 5).t(),
        "b": torch.tensor([[True, False]]),
        "empty": torch.zeros(0, 4, dtype=torch.int32),
        "scalar": torch.tensor(7, dtype=torch.uint8),
        "meta": {"name": "x", "list": [1, 2.5, None]},
    }
    value = client.call("echo", params)
    assert value.keys() == params.keys()
    for k, v in params.items():
        if isinstance(v, torch.Tensor):
            assert value[k].dtype == v.dtype and torch.equal(value[k], v), k
    assert value["meta"] == params["meta"]


def test_64_in_flight(client: Client) -> None:
    ids = {}
    for i in range(64):
        if i % 8 == 0:
            ids[client.submit("sleep", {"seconds": 0.05, "tick": 0.02})] = None
        else:
            ids[client.submit("echo", {"i": i, "t": torch.full((i,), float(i))})] = i
    for request_id, i in ids.items():
        outcome = client.wait(request_id)
        assert outcome.terminal is not None and outcome.terminal.msg_type == "result"
        assert outcome.terminal.header["parent_id"] == request_id
        if i is not None:
            value = outcome.terminal.content["value"]
            assert value["i"] == i and torch.equal(value["t"], torch.full((i,), float(i)))


def test_events_are_ordered_then_one_terminal(client: Client) -> None:
    outcome = client.wait(client.submit("sleep", {"seconds": 0.2, "tick": 0.02}))
    seqs = [e.content["seq"] for e in outcome.events]
    assert seqs == list(range(len(seqs))) and len(seqs) >= 5
    assert [e.content["data"]["i"] for e in outcome.events] == seqs
    assert {e.content["type"] for e in outcome.events} == {"tick"}
    assert outcome.terminal is not None and outcome.terminal.content["value"]["slept"] >= 0.2


def test_python_exception_becomes_error_with_traceback(client: Client) -> None:
    reply = result_of(
        client,
        "mine",
        {
            "sampler": "np-test",
            "embeddings": torch.randn(4, 2),
            "labels": torch.tensor([0, -1, 1, 1]),
        },
    )
    assert reply["type"] == "error" and reply["ename"] == "ValueError"
    assert reply["evalue"] == "labels must be >= 0"
    assert reply["traceback"][0].startswith("Traceback")
    assert any("nptestplug" in line and "plugin.py" in line for line in reply["traceback"])
    assert client.call("echo", {"still": "serving"}) == {"still": "serving"}


@pytest.mark.parametrize(
    ("method", "params", "ename", "fragment"),
    [
        ("nope", {}, "UnknownMethod", "known: bytes_in, bytes_out"),
        ("sleep", {"seconds": "long"}, "InvalidParams", "params.seconds"),
        ("bytes_out", {"nbytes": 8, "dtype": "f8"}, "InvalidParams", "'float32', 'float64'"),
        (
            "mine",
            {"sampler": "zz", "embeddings": torch.ones(2, 2), "labels": torch.ones(2)},
            "InvalidParams",
            "known: ",
        ),
        (
            "mine",
            {"sampler": "np-test", "embeddings": [1, 2], "labels": torch.ones(2)},
            "InvalidParams",
            "params.embeddings",
        ),
        (
            "mine",
            {
                "sampler": "np-test",
                "config": {"positives": "far"},
                "embeddings": torch.ones(2, 2),
                "labels": torch.ones(2, dtype=torch.int64),
            },
            "InvalidParams",
            "'all' or 'nearest'",
        ),
        (
            "mine",
            {
                "sampler": "np-test",
                "embeddings": torch.ones(3, 2),
                "labels": torch.ones(2, dtype=torch.int64),
            },
            "InvalidParams",
            "labels has 2 rows, params.embeddings has 3",
        ),
        (
            "loss",
            {
                "loss": "nope",
                "sampler": "np-test",
                "embeddings": torch.ones(2, 2),
                "labels": torch.ones(2, dtype=torch.int64),
            },
            "InvalidParams",
            "known: pml:TripletMarginLoss",
        ),
    ],
)
def test_bad_calls_name_the_problem(
    client: Client, method: str, params: dict, ename: str, fragment: str
) -> None:
    reply = result_of(client, method, params)
    assert reply["type"] == "error" and reply["ename"] == ename, reply
    assert fragment in reply["evalue"]
    if ename == "InvalidParams":
        assert reply["code"] == "invalid_params"


def brute_force_nearest(emb: torch.Tensor, labels: torch.Tensor) -> list[tuple[int, int, int]]:
    emb = torch.nn.functional.normalize(emb, dim=1)
    out = []
    for i in range(len(emb)):
        best, best_d = None, None
        for j in range(len(emb)):
            if j != i and labels[j] == labels[i]:
                d = float(((emb[i] - emb[j]) ** 2).sum().sqrt())
                if best_d is None or d < best_d:
                    best, best_d = j, d
        if best is not None:
            out += [(i, best, k) for k in range(len(emb)) if labels[k] != labels[i]]
    return out


def test_mine_and_loss_through_a_discovered_plugin(client: Client) -> None:
    from pytorch_metric_learning.losses import TripletMarginLoss

    gen = torch.Generator().manual_seed(3)
    emb = torch.randn(12, 4, generator=gen)
    labels = torch.tensor([0, 1, 2] * 4)
    value = client.call(
        "mine",
        {
            "sampler": "np-test",
            "config": {"positives": "nearest"},
            "embeddings": emb,
            "labels": labels,
        },
    )
    got = list(
        zip(
            *(value["indices"][k].tolist() for k in ("anchors", "positives", "negatives")),
            strict=True,
        )
    )
    expected = brute_force_nearest(emb, labels)
    assert got == expected and value["diagnostics"] == {"tuples": len(expected)}
    loss = client.call(
        "loss",
        {
            "loss": "pml:TripletMarginLoss",
            "loss_config": {"margin": 0.3},
            "sampler": "np-test",
            "config": {"positives": "nearest"},
            "embeddings": emb,
            "labels": labels,
        },
    )
    a, p, n = (torch.tensor(c) for c in zip(*expected, strict=True))
    reference = TripletMarginLoss(margin=0.3)(emb, labels, indices_tuple=(a, p, n))
    assert loss["value"] == pytest.approx(float(reference), rel=1e-6)


def test_cancel_then_next_request(client: Client) -> None:
    request_id = client.submit("sleep", {"seconds": 30, "tick": 0.02})
    time.sleep(0.2)
    assert request_id in client.heartbeat()["running"]
    start = time.monotonic()
    assert client.cancel(request_id) is True
    outcome = client.wait(request_id, timeout=5)
    assert time.monotonic() - start < 1.0
    assert outcome.terminal is not None and outcome.terminal.msg_type == "cancelled"
    assert outcome.terminal.content == {"reason": "cancel_request"}
    assert len(outcome.events) >= 1
    assert client.cancel(request_id) is False
    assert client.call("echo", {"after": 1}) == {"after": 1}
    assert request_id not in client.heartbeat()["running"]


def test_release_and_bytes_methods(client: Client) -> None:
    assert client.call("release", {"id": "model-0000"}) == {"released": False}
    assert client.call("bytes_in", {"tensor": torch.zeros(1000, dtype=torch.float64)}) == {
        "nbytes": 8000
    }
    out = client.call("bytes_out", {"nbytes": 4096, "dtype": "int16"})
    assert out.dtype == torch.int16 and out.numel() == 2048


def _dropped(client: Client) -> dict[str, int]:
    return client.heartbeat()["dropped"]


def test_bad_frames_are_dropped_and_counted(client: Client, runtime: RuntimeProcess) -> None:
    before = _dropped(client)
    good = client.codec.build("call_request", {"method": "echo", "params": {"k": 1}})
    good = [bytes(f) for f in good]
    forged = Codec(os.urandom(32), "f" * 32, False).build(
        "call_request", {"method": "echo", "params": {}}
    )
    client.send_raw("request", [TAG, b"", *good[2:]])  # unsigned
    client.send_raw("request", forged)  # wrong key
    client.send_raw("request", [b"nearpos/9", *good[1:]])  # wrong tag
    client.send_raw("request", good[:3])  # too few frames
    client.send_raw("request", good)
    client.send_raw("request", good)  # replayed
    old = make_header("call_request", "s" * 32, parent_id=None, date="2020-01-01T00:00:00.000Z")
    client.send_raw("request", encode(client.key, old, {"method": "echo", "params": {}}))
    halves = {"a": torch.zeros(150_000), "b": torch.zeros(150_000)}
    big = client.codec.build("call_request", {"method": "echo", "params": halves})
    # 1.2 MB > --max-message-bytes 1000000, each frame within ZeroMQ's per-frame limit (the
    # limit plus headroom; test_hardening has a frame far over it)
    client.send_raw("request", big)
    bad_json = [TAG, b"", b"[1]", b"{}"]
    bad_json[1] = signature(client.key, [bad_json[0], bad_json[2], bad_json[3]])
    client.send_raw("control", bad_json)  # control channel counts too
    reply = client.recv("request")  # exactly one answer: the genuine echo
    assert reply.msg_type == "result" and reply.content == {"value": {"k": 1}}
    expected = {"malformed": 3, "oversized": 1, "bad_signature": 2, "replayed": 2}
    deadline = time.monotonic() + 5  # the channels are served by different threads
    while True:
        after = _dropped(client)
        delta = {k: after[k] - before[k] for k in after}
        if delta == expected or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert delta == expected
    with pytest.raises(TimeoutError):
        client.recv("request", timeout=0.3)
    assert client.call("echo", {"ok": True}) == {"ok": True}


def test_authenticated_but_wrong_gets_protocol_error(client: Client) -> None:
    def send(header_changes: dict, content: dict, buffers: list[bytes], channel: str = "request"):
        header = make_header("call_request", client.codec.session, parent_id=None)
        header.update(header_changes)
        client.send_raw(channel, encode(client.key, header, content, buffers))
        reply = client.recv(channel)
        assert reply.msg_type == "error" and reply.header["parent_id"] == header["msg_id"]
        assert reply.content["ename"] == "ProtocolError"
        return reply.content["code"], reply.content["evalue"]

    echo = {"method": "echo", "params": {"t": {"$tensor": 0}}}
    desc = {"dtype": "float32", "shape": [2], "nbytes": 8}
    assert send({"msg_type": "bogus"}, echo, [])[0] == "unknown_msg_type"
    assert send({"msg_type": "call_request"}, {}, [], "control")[0] == "unknown_msg_type"
    assert send({"version": "2.0"}, echo, [])[0] == "unsupported_version"
    assert send({"buffers": [desc]}, echo, [b"\0" * 4]) == (
        "bad_tensor",
        "buffer frame 0 has 4 bytes, header says 8",
    )
    assert send({"buffers": [dict(desc, dtype="f4")]}, echo, [b"\0" * 8])[0] == "bad_tensor"
    assert (
        send({"buffers": [desc]}, {"method": "echo", "params": {"t": {"$tensor": 3}}}, [b"\0" * 8])[
            0
        ]
        == "bad_tensor"
    )
    assert send({}, {"params": {}}, [])[0] == "malformed"
    assert client.call("echo", {"ok": 1}) == {"ok": 1}


def test_dumps_refuses_nan() -> None:
    with pytest.raises(ValueError):
        dumps({"x": float("nan")})
