"""Framing and signatures: round trip, and any tampered frame is rejected."""

from __future__ import annotations

import os

import pytest
import torch

from nearpos_runtime.protocol.errors import Dropped
from nearpos_runtime.protocol.messages import Codec
from nearpos_runtime.protocol.tensors import decode_buffers, decode_value
from nearpos_runtime.protocol.wire import TAG, signature, verify

KEY = bytes(range(32))
BIG = 2**40


def build(signed: bool = False) -> list:
    codec = Codec(KEY, "s" * 32, signed_buffers=signed)
    content = {"method": "echo", "params": {"x": torch.arange(6.0).reshape(2, 3), "n": 3}}
    return [bytes(f) for f in codec.build("call_request", content)]


@pytest.mark.parametrize("signed", [False, True])
def test_round_trip(signed: bool) -> None:
    frames = build(signed)
    assert frames[0] == TAG and len(frames[1]) == 64
    message = verify(KEY, frames, BIG, signed_buffers=signed)
    assert message.header["signed_buffers"] is signed
    content = decode_value(message.content, decode_buffers(message.header, message.buffers))
    assert torch.equal(content["params"]["x"], torch.arange(6.0).reshape(2, 3))
    assert content["params"]["n"] == 3


def test_signature_is_length_prefixed_hmac() -> None:
    import hashlib
    import hmac

    frames = build()
    mac = hmac.new(KEY, digestmod=hashlib.sha256)
    for i in (0, 2, 3):
        mac.update(len(frames[i]).to_bytes(8, "big") + frames[i])
    assert frames[1] == mac.hexdigest().encode()
    # moving a byte across a frame boundary changes the signature
    assert signature(KEY, [b"ab", b"c"]) != signature(KEY, [b"a", b"bc"])


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("index", [0, 1, 2, 3, 4])
def test_tampering_any_frame_is_rejected(signed: bool, index: int) -> None:
    frames = build(signed)
    tampered = list(frames)
    data = bytearray(tampered[index])
    data[len(data) // 2] ^= 0x01
    tampered[index] = bytes(data)
    if index == 4 and not signed:
        # buffers are outside the signature unless the connection signs them
        verify(KEY, tampered, BIG, signed_buffers=False)
        return
    with pytest.raises(Dropped) as info:
        verify(KEY, tampered, BIG, signed_buffers=signed)
    assert info.value.reason == ("malformed" if index == 0 else "bad_signature")


def test_wrong_key_and_unsigned() -> None:
    frames = build()
    with pytest.raises(Dropped, match="bad_signature"):
        verify(os.urandom(32), frames, BIG, signed_buffers=False)
    with pytest.raises(Dropped, match="bad_signature"):
        verify(KEY, [frames[0], b"", *frames[2:]], BIG, signed_buffers=False)


def test_checks_run_in_order() -> None:
    frames = build()
    with pytest.raises(Dropped, match="malformed"):
        verify(KEY, frames[:3], BIG, signed_buffers=False)
    total = sum(len(f) for f in frames)
    with pytest.raises(Dropped, match="oversized"):  # size is checked before the signature
        verify(os.urandom(32), frames, total - 1, signed_buffers=False)
    verify(KEY, frames, total, signed_buffers=False)
    bad_json = [TAG, b"", b"{not json", b"{}"]
    bad_json[1] = signature(KEY, [bad_json[0], bad_json[2], bad_json[3]])
    with pytest.raises(Dropped, match="malformed"):
        verify(KEY, bad_json, BIG, signed_buffers=False)
    no_fields = [TAG, b"", b'{"msg_id": "x"}', b"{}"]
    no_fields[1] = signature(KEY, [no_fields[0], no_fields[2], no_fields[3]])
    with pytest.raises(Dropped, match="header lacks"):
        verify(KEY, no_fields, BIG, signed_buffers=False)


@pytest.mark.parametrize("connection_signs", [False, True])
def test_coverage_follows_the_connection_not_the_header(connection_signs: bool) -> None:
    # A message signed the other way fails, whatever its header says.
    with pytest.raises(Dropped, match="bad_signature"):
        verify(KEY, build(not connection_signs), BIG, signed_buffers=connection_signs)
    verify(KEY, build(connection_signs), BIG, signed_buffers=connection_signs)


def test_nothing_is_parsed_before_the_signature_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    from nearpos_runtime.protocol import wire

    parsed: list[int] = []
    real = wire._parse_object  # every JSON frame is read through it

    def counting(data: memoryview) -> object:
        parsed.append(data.nbytes)
        return real(data)

    monkeypatch.setattr(wire, "_parse_object", counting)
    frames = build()
    huge_header = b'{"signed_buffers": true, "x": "' + b"a" * (4 << 20) + b'"}'
    with pytest.raises(Dropped, match="bad_signature"):
        verify(KEY, [frames[0], b"0" * 64, huge_header, frames[3]], BIG, signed_buffers=False)
    with pytest.raises(Dropped, match="bad_signature"):
        verify(os.urandom(32), frames, BIG, signed_buffers=False)
    assert parsed == []
    verify(KEY, frames, BIG, signed_buffers=False)
    assert len(parsed) == 2  # header and content, once authenticated


def test_content_too_deep_to_parse_is_authenticated_and_flagged() -> None:
    codec = Codec(KEY, "s" * 32, signed_buffers=False)
    frames = [bytes(f) for f in codec.build("call_request", {"method": "echo"})]
    deep = b'{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    frames[3] = deep
    frames[1] = signature(KEY, [frames[0], frames[2], deep])
    message = verify(KEY, frames, BIG, signed_buffers=False)
    assert message.too_deep and message.content == {}
