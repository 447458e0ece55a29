"""The shortcuts taken for speed give the same bytes and errors as the plain paths."""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import time
from datetime import datetime, timezone

import pytest
import torch

from nearpos_runtime.protocol.replay import ReplayGuard
from nearpos_runtime.protocol.tensors import Encoder, encode_value
from nearpos_runtime.protocol.wire import parse_date, signature, utc_now_iso

KEY = bytes(range(32))


def reference_signature(key: bytes, frames: list[bytes]) -> bytes:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for frame in frames:
        mac.update(len(frame).to_bytes(8, "big"))
        mac.update(frame)
    return mac.hexdigest().encode()


@pytest.mark.parametrize(
    "sizes",
    [[], [0], [3, 0, 7], [64 * 1024, 64 * 1024 + 1], [5, 200_000, 9, 300_000], [1 << 20]],
)
def test_signature_matches_per_frame_hmac(sizes: list[int]) -> None:
    frames = [bytes([i % 251]) * n for i, n in enumerate(sizes)]
    assert signature(KEY, frames) == reference_signature(KEY, frames)
    assert signature(b"k" * 32, frames) == reference_signature(b"k" * 32, frames)
    views = [memoryview(f) for f in frames]
    assert signature(KEY, views) == reference_signature(KEY, frames)


def test_utc_now_iso_is_the_current_time_to_the_millisecond() -> None:
    for _ in range(3):
        before = datetime.now(timezone.utc)
        text = utc_now_iso()
        after = datetime.now(timezone.utc)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text), text
        when = parse_date(text)
        assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= when <= after
        time.sleep(0.4)  # crosses a second boundary at least once over the loop


PLAIN = [
    {},
    {"a": 1, "b": [1, 2.5, "x", None, True, {"c": []}]},
    {"$tensor": "not an index"},  # ordinary JSON
    [1, [2, [3]]],
]
NOT_PLAIN = [
    {"t": (1, 2)},  # tuples become lists
    {"f": math.nan, "g": [math.inf]},  # non-finite floats become null
    {"x": torch.arange(3)},
]


@pytest.mark.parametrize("value", PLAIN + NOT_PLAIN)
def test_encode_value_equals_the_full_walk(value: object) -> None:
    encoder = Encoder()
    walked = encoder.encode(value)
    got, descriptors, frames = encode_value(value)
    assert got == walked
    assert descriptors == encoder.descriptors
    assert [bytes(f) for f in frames] == [bytes(f) for f in encoder.frames]


@pytest.mark.parametrize("value", [{"$tensor": 0}, {"a": [{"$tensor": 1}]}, {1: "int key"}])
def test_encode_value_still_refuses_what_the_walk_refuses(value: object) -> None:
    with pytest.raises(TypeError):
        encode_value(value)


def test_replay_uses_a_parsed_date_and_still_refuses_replays() -> None:
    guard = ReplayGuard(window_s=60)
    now = time.time()
    guard.check("a", "ignored when 'when' is given", now=now, when=now)
    with pytest.raises(Exception, match="seen before"):
        guard.check("a", utc_now_iso(), now=now)
    with pytest.raises(Exception, match="away"):
        guard.check("b", "x", now=now, when=now - 120)
