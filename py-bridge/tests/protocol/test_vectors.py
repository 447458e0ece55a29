"""docs/protocol-vectors.json is current, and its frames verify and decode."""

from __future__ import annotations

import json

import torch

from nearpos_runtime.protocol.tensors import DTYPES, decode_buffers, decode_value
from nearpos_runtime.protocol.vectors import DEFAULT_PATH, main, render
from nearpos_runtime.protocol.wire import verify


def test_file_is_current() -> None:
    assert DEFAULT_PATH.read_text(encoding="utf-8") == render(), (
        "run: python -m nearpos_runtime.protocol.vectors"
    )
    assert main(["--check"]) == 0


def test_frames_verify_and_decode() -> None:
    data = json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))
    key = bytes.fromhex(data["key_hex"])
    seen_dtypes = set()
    for message in data["messages"]:
        frames = [bytes.fromhex(h) for h in message["frames_hex"]]
        incoming = verify(key, frames, 2**40, signed_buffers=message["connection_signed_buffers"])
        assert incoming.header == message["header"]
        tensors = decode_buffers(incoming.header, incoming.buffers)
        decode_value(incoming.content, tensors)
        for t, spec in zip(tensors, message["tensors"], strict=True):
            seen_dtypes.add(spec["dtype"])
            expected = spec["values"]
            if t.dtype == torch.int64:
                expected = [int(v) for v in expected]
                got = t.reshape(-1).tolist()
            else:
                got = t.float().tolist() if t.dtype.is_floating_point else t.tolist()
            assert got == expected
    assert seen_dtypes == set(DTYPES)
