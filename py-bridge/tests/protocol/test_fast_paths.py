"""The shortcuts taken for speed give the same bytes and errors as the plain paths."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import time
from datetime import datetime, timezone

import pytest
import torch

from nearpos_runtime.protocol import wire
from nearpos_runtime.protocol.errors import ProtocolError
from nearpos_runtime.protocol.messages import Codec, decode_content
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


# -- receiving: JSON frames, header checks, dates, content without a walk -------------------


def plain_parse(data: bytes) -> object:
    """What verify did before the fast path: json.loads on the frame's bytes."""
    try:
        value = json.loads(data)
    except RecursionError:
        return "too deep"
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


FRAMES = [
    b'{"a": 1, "b": [1, 2.5, "x\\u00e9", null, true, {"c": []}]}',
    b'{"a":1}  \n',
    b'{"a":1} x',  # trailing data
    b'{"a":1}{"b":2}',
    b'  {"a": 1}',  # leading blank: the plain path
    b"[1, 2]",
    b'"text"',
    b"{",
    b"{}",
    b'{"s": "\\ud800"}',  # a lone surrogate, escaped
    '{"s": "\ud800"}'.encode("utf-8", "surrogatepass"),  # and raw (json.loads accepts it)
    b'{"s": "\xff"}',  # not UTF-8
    '{"a": "é"}'.encode("utf-16"),  # with a BOM
    '{"a": 1}'.encode("utf-16-le"),  # without: json.loads detects it
    '{"a": 1}'.encode("utf-32"),
    b"\xef\xbb\xbf{}",  # UTF-8 BOM
    b'{"n": NaN, "i": -Infinity}',
    b'{"big": 123456789012345678901234567890}',
    b'{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b"{\0}",
    b"",
]


@pytest.mark.parametrize("data", FRAMES)
def test_frame_parsing_equals_json_loads(data: bytes) -> None:
    try:
        got: object = wire._parse_object(memoryview(data))[0]
    except wire._TooDeep:
        got = "too deep"
    want = plain_parse(data)
    if isinstance(want, dict) and any(isinstance(v, float) and v != v for v in want.values()):
        assert json.dumps(got) == json.dumps(want)  # NaN != NaN
    else:
        assert got == want


DATES = [
    "2026-11-28T13:05:38.123Z",
    "2026-11-28T13:05:38.000Z",
    "2026-11-28T13:05:38.999Z",
    "1999-12-31T23:59:59.500Z",
    "2026-02-29T00:00:00.000Z",  # not a leap year
    "2026-13-01T00:00:00.000Z",
    "2026-11-28 13:05:38.123Z",  # a space separator: fromisoformat takes it
    "2026-11-28T13:05:38.12aZ",
    "2026-11-28T13:05:38.１２３Z",  # full-width digits
    "2026-11-28T13:05:38.123+00:00",
    "2026-11-28T13:05:38.123+02:00",
    "2026-11-28T13:05:38Z",
    "2026-11-28T13:05:38.123456Z",
    "2026-11-28T13:05:38.123",  # no time zone
    "yesterday",
    "",
]


@pytest.mark.parametrize("text", DATES)
def test_date_seconds_equals_parse_date(text: str) -> None:
    for _ in range(2):  # the second time from the per-second cache
        try:
            want: object = parse_date(text).timestamp()
        except ValueError:
            want = ValueError
        try:
            got: object = wire.date_seconds(text)
        except ValueError:
            got = ValueError
        assert got == want


def test_date_seconds_over_a_day_of_milliseconds() -> None:
    start = time.time() - 86_400
    for i in range(2000):
        t = start + i * 43.217
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{i % 1000:03d}Z"
        assert wire.date_seconds(text) == parse_date(text).timestamp()


GOOD_HEADER = {
    "msg_id": "a" * 32,
    "msg_type": "call_request",
    "session": "s" * 32,
    "date": "2026-11-28T13:05:38.123Z",
    "parent_id": None,
    "version": "1.0",
    "buffers": [],
    "signed_buffers": False,
}
HEADER_CHANGES: list[dict[str, object]] = [
    {},
    {"parent_id": "p" * 32},
    {"parent_id": 3},
    {"msg_id": 1},
    {"buffers": {}},
    {"signed_buffers": 0},
    {"date": "now"},
    {"date": 5},
    {"version": 1.0},
    {"extra": "ignored"},
]


@pytest.mark.parametrize("change", HEADER_CHANGES)
@pytest.mark.parametrize("drop", [None, *GOOD_HEADER])
def test_header_check_equals_the_field_by_field_check(
    change: dict[str, object], drop: str | None
) -> None:
    header = {**GOOD_HEADER, **change}
    if drop is not None:
        header.pop(drop)
    assert wire._header_when(header) == wire._header_problem(header)


CONTENTS = [
    {"method": "echo", "params": {"i": 1}},
    {"method": "echo", "params": {"a": [1, {"b": [None, True, "x"]}], "$tensor": "text"}},
    {"method": "echo", "params": {"t": {"$tensor": 0}}},  # a placeholder with no buffer
    {"method": "echo", "params": {"t": {"$tensor": 1.5}}},
    {"method": "echo", "params": {"k": "brackets [[[{{{ in text"}},
    {"method": "echo", "params": {"d": json.loads("[" * 62 + "]" * 62)}},  # 64 levels
    {"method": "echo", "params": {"d": json.loads("[" * 63 + "]" * 63)}},  # 65 levels
]


def _decoded(frames: list[bytes], *, fast: bool) -> object:
    message = wire.verify(KEY, frames, 2**40, signed_buffers=False)
    if not fast:
        message.plain_depth = None  # the walk, as before
    try:
        return decode_content(message)
    except ProtocolError as exc:
        return ("ProtocolError", exc.code, str(exc))


def raw_frames(content_text: str) -> list[bytes]:
    """A signed call_request whose content frame is ``content_text`` as it stands."""
    frames = [bytes(f) for f in Codec(KEY, "s" * 32, False).build("call_request", {})]
    frames[3] = content_text.encode()
    frames[1] = signature(KEY, [frames[0], frames[2], frames[3]])
    return frames


@pytest.mark.parametrize("content", CONTENTS)
def test_content_without_a_walk_equals_the_walk(content: dict[str, object]) -> None:
    frames = raw_frames(json.dumps(content))
    assert _decoded(frames, fast=True) == _decoded(frames, fast=False)


@pytest.mark.parametrize(
    "text",
    [
        '{"method":"echo","params":{"t":{"\\u0024tensor":0}}}',  # an escaped placeholder key
        '{"method":"echo","params":{"t":{"$tensor":0}}}',
        '{"method":"echo","params":{"x":"\\u00e9"}}',
        '{"method":"echo","params":{"x":"é"}}',
    ],
)
def test_content_that_could_spell_a_placeholder_takes_the_walk(text: str) -> None:
    frames = raw_frames(text)
    message = wire.verify(KEY, frames, 2**40, signed_buffers=False)
    assert (message.plain_depth is None) == ("$tensor" in text or "\\u" in text)
    assert _decoded(frames, fast=True) == _decoded(frames, fast=False)


# -- sending: header text, JSON, ids ----------------------------------------------------------


@pytest.mark.parametrize("parent_id", [None, "p" * 32, 'quote" and \\ backslash', "é\u2028"])
@pytest.mark.parametrize("msg_type", ["result", "event", 'wei"rd'])
@pytest.mark.parametrize("descriptors", [[], [{"dtype": "float32", "shape": [2, 3], "nbytes": 24}]])
@pytest.mark.parametrize("signed", [False, True])
def test_header_text_equals_dumps_of_make_header(
    parent_id: str | None, msg_type: str, descriptors: list[dict[str, object]], signed: bool
) -> None:
    codec = Codec(KEY, 'se"ssion', signed)
    msg_id, date = wire.new_msg_id(), utc_now_iso()
    plain = wire.dumps(
        wire.make_header(
            msg_type,
            'se"ssion',
            parent_id=parent_id,
            buffers=descriptors,
            signed_buffers=signed,
            msg_id=msg_id,
            date=date,
        )
    )
    assert codec.header_bytes(msg_type, parent_id, descriptors, msg_id, date) == plain


@pytest.mark.parametrize("signed", [False, True])
def test_build_equals_encode_of_make_header(signed: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    from nearpos_runtime.protocol import messages

    monkeypatch.setattr(messages, "new_msg_id", lambda: "i" * 32)
    monkeypatch.setattr(messages, "utc_now_iso", lambda: "2026-11-28T13:05:38.123Z")
    content = {"value": {"x": torch.arange(4.0), "n": [1, 2.5, None]}}
    frames = Codec(KEY, "s" * 32, signed).build("result", content, "p" * 32)
    encoded, descriptors, buffers = encode_value(content)
    header = wire.make_header(
        "result",
        "s" * 32,
        parent_id="p" * 32,
        buffers=descriptors,
        signed_buffers=signed,
        msg_id="i" * 32,
        date="2026-11-28T13:05:38.123Z",
    )
    plain = wire.encode(KEY, header, encoded, buffers)
    assert [bytes(f) for f in frames] == [bytes(f) for f in plain]


DUMPED = [
    {"a": [1, 2.5, "é", None, True], "b": {"c": "\u2028"}},
    "text",
    1e300,
    [],
    {"nan": math.nan},
    {"inf": [math.inf]},
    {"obj": object()},
    {1: "int key"},
]


@pytest.mark.parametrize("value", DUMPED)
def test_dumps_equals_the_json_encoder(value: object) -> None:
    encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        want: object = encoder.encode(value).encode()
    except (TypeError, ValueError) as exc:
        want = (type(exc), str(exc))
    try:
        got: object = wire.dumps(value)
    except (TypeError, ValueError) as exc:
        got = (type(exc), str(exc))
    assert got == want


def test_dumps_still_refuses_a_cycle() -> None:
    cycle: list[object] = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match="Circular"):
        wire.dumps(cycle)


def test_msg_ids_are_random_hex_and_distinct() -> None:
    ids = [wire.new_msg_id() for _ in range(5000)]  # crosses several refills of the pool
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_child_does_not_reuse_its_parents_ids() -> None:
    import os

    wire.new_msg_id()  # the pool holds ids now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, wire.new_msg_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert child != wire.new_msg_id()


# -- replay: expiry only when due equals expiry on every message ------------------------------


class EagerGuard(ReplayGuard):
    """The guard as it was: the expiry walk on every message."""

    def check(
        self, msg_id: str, date: str, now: float | None = None, when: float | None = None
    ) -> None:
        self._oldest = float("-inf")  # always due
        super().check(msg_id, date, now, when)


def test_replay_expiry_when_due_equals_expiry_every_time() -> None:
    import random

    rng = random.Random(7)
    fast, eager = ReplayGuard(window_s=10, max_ids=50), EagerGuard(window_s=10, max_ids=50)
    now = 1_000_000.0
    ids: list[str] = []
    for step in range(3000):
        now += rng.choice([0.001, 0.01, 0.5, 3.0])
        if ids and rng.random() < 0.1:
            msg_id = rng.choice(ids)  # a replay
        else:
            msg_id = f"id{step}"
            ids.append(msg_id)
        when = now + rng.uniform(-12, 2)
        outcomes = []
        for guard in (fast, eager):
            try:
                guard.check(msg_id, "", now=now, when=when)
                outcomes.append("ok")
            except Exception as exc:  # noqa: BLE001
                outcomes.append(str(exc).split(":")[0] + str(exc).split(" ")[-1])
        assert outcomes[0] == outcomes[1], step
        assert len(fast) == len(eager) and list(fast._seen) == list(eager._seen)
