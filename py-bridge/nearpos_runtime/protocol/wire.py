"""Multipart framing and HMAC-SHA256 signatures (docs/protocol.md, "Wire framing").

Frames: 0 tag, 1 signature (64 lowercase hex), 2 header JSON, 3 content JSON, 4... buffers.
The signature covers, for each covered frame, its length as 8-byte big-endian then its
bytes: frames 0, 2, 3 always, then every buffer frame when the connection signs buffers
(its ``signed_buffers``, fixed per runtime). Nothing of a message is parsed before its
signature has matched.
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .errors import Dropped
from .version import PROTOCOL_VERSION, TAG

# Anything exposing the buffer protocol: bytes, bytearray, memoryview, numpy arrays.
Buffer = bytes | bytearray | memoryview

DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024**3
# ZeroMQ's own per-frame limit (ZMQ_MAXMSGSIZE) is max_message_bytes plus this much: a
# message a little over the limit still arrives and is counted as oversized, while a frame
# far over it makes ZeroMQ close that connection before allocating anything for it.
FRAME_HEADROOM = 64 * 1024


def socket_frame_limit(max_message_bytes: int) -> int:
    """The ZMQ_MAXMSGSIZE that goes with ``max_message_bytes`` (an int64 socket option)."""
    return min(max_message_bytes + FRAME_HEADROOM, 2**63 - 1)


HEADER_FIELDS: dict[str, tuple[type, ...]] = {
    "msg_id": (str,),
    "msg_type": (str,),
    "session": (str,),
    "date": (str,),
    "parent_id": (str, type(None)),
    "version": (str,),
    "buffers": (list,),
    "signed_buffers": (bool,),
}


# Frames up to this size are joined into one HMAC update (fewer calls into OpenSSL);
# larger ones are fed as they are (no copy).
_JOIN_MAX = 64 * 1024
# HMAC objects keyed once per key (the inner and outer pads are computed once), copied per
# message: a runtime and its client each use one key.
_MACS: dict[bytes, Any] = {}


def _keyed(key: bytes) -> Any:
    mac = _MACS.get(key)
    if mac is None:
        if len(_MACS) > 64:  # tests make many keys; a process normally has one or two
            _MACS.clear()
        mac = _MACS[key] = hmac.new(key, digestmod="sha256")
    return mac.copy()


def signature(key: bytes, frames: Iterable[Buffer]) -> bytes:
    """HMAC-SHA256 over the length-prefixed ``frames``, as 64 lowercase hex ASCII bytes."""
    mac = _keyed(key)
    small: list[Buffer] = []
    for frame in frames:
        nbytes = memoryview(frame).nbytes
        small.append(nbytes.to_bytes(8, "big"))
        if nbytes <= _JOIN_MAX:
            small.append(frame)
        else:
            mac.update(b"".join(small))
            small.clear()
            mac.update(frame)
    if small:
        mac.update(b"".join(small))
    return mac.hexdigest().encode("ascii")


_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON; NaN and infinities are refused (JSON has no spelling for them)."""
    return _dumps(obj).encode()


def new_msg_id() -> str:
    return secrets.token_hex(16)


_clock: tuple[int, str] = (-1, "")  # (a second, its text): one tuple, swapped atomically


def utc_now_iso() -> str:
    """The current UTC time as ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    global _clock
    now = time.time()
    second, text = _clock
    if int(now) != second:  # strftime once a second, not per message
        second = int(now)
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _clock = (second, text)
    return f"{text}.{int((now - second) * 1000):03d}Z"


def parse_date(text: str) -> datetime:
    """Parse an ISO 8601 date with a time zone (``Z`` accepted); ValueError otherwise."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if value.tzinfo is None:
        raise ValueError(f"date {text!r} has no time zone")
    return value


def make_header(
    msg_type: str,
    session: str,
    *,
    parent_id: str | None,
    buffers: Sequence[dict[str, Any]] = (),
    signed_buffers: bool = False,
    msg_id: str | None = None,
    date: str | None = None,
) -> dict[str, Any]:
    return {
        "msg_id": msg_id or new_msg_id(),
        "msg_type": msg_type,
        "session": session,
        "date": date or utc_now_iso(),
        "parent_id": parent_id,
        "version": PROTOCOL_VERSION,
        "buffers": list(buffers),
        "signed_buffers": signed_buffers,
    }


def encode(
    key: bytes, header: dict[str, Any], content: Any, buffers: Sequence[Buffer] = ()
) -> list[Buffer]:
    """Frames 0.. of one message (without a routing identity), signed with ``key``."""
    if len(buffers) != len(header.get("buffers", ())):
        raise ValueError(
            f"{len(buffers)} buffer frames but header.buffers has {len(header['buffers'])}"
        )
    header_bytes = dumps(header)
    content_bytes = dumps(content)
    covered: list[Buffer] = [TAG, header_bytes, content_bytes]
    if header.get("signed_buffers"):
        covered.extend(buffers)
    return [TAG, signature(key, covered), header_bytes, content_bytes, *buffers]


@dataclass
class Incoming:
    """An authenticated message: parsed header and content, raw buffer frames."""

    header: dict[str, Any]
    content: dict[str, Any]
    buffers: list[memoryview] = field(default_factory=list)
    # header.date as epoch seconds, parsed once by ``verify`` (the replay check reuses it)
    when: float | None = None
    # The content nests too deeply to parse: the message is authenticated, so it is
    # answered (a ProtocolError), not dropped; ``content`` is then empty.
    too_deep: bool = False

    @property
    def msg_id(self) -> str:
        return str(self.header["msg_id"])

    @property
    def msg_type(self) -> str:
        return str(self.header["msg_type"])


class _TooDeep(Exception):
    pass


def _parse_object(data: memoryview) -> dict[str, Any] | None:
    """The JSON object in ``data``; None when it is not one; _TooDeep when it nests deeper
    than the parser's recursion allows."""
    try:
        value = json.loads(bytes(data))
    except RecursionError:
        raise _TooDeep() from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _header_problem(header: dict[str, Any]) -> str | float:
    """What is wrong with ``header``, or (all fine) its date as epoch seconds."""
    for name, types in HEADER_FIELDS.items():
        if name not in header:
            return f"header lacks {name!r}"
        if not isinstance(header[name], types):
            return f"header.{name} has the wrong type"
    try:
        return parse_date(header["date"]).timestamp()
    except ValueError:
        return f"header.date {header['date']!r} is not an ISO 8601 date with a time zone"


def verify(
    key: bytes, frames: Sequence[Buffer], max_message_bytes: int, *, signed_buffers: bool
) -> Incoming:
    """Checks 1-4 of docs/protocol.md in order; raises ``Dropped`` on the first failure.

    ``frames`` excludes the routing identity; ``signed_buffers`` is the connection's
    setting (never the header's: nothing is parsed before the signature matched).
    Replay (check 5) is ``replay.ReplayGuard``'s.
    """
    views = [memoryview(f) for f in frames]
    if len(views) < 4 or views[0] != TAG:
        raise Dropped("malformed", "fewer than 4 frames or wrong protocol tag")
    total = sum(v.nbytes for v in views)
    if total > max_message_bytes:
        raise Dropped("oversized", f"{total} bytes > {max_message_bytes}")
    covered = [views[0], views[2], views[3]]
    if signed_buffers:
        covered.extend(views[4:])
    expected = signature(key, covered)
    if not hmac.compare_digest(expected, bytes(views[1])):
        raise Dropped("bad_signature")
    try:
        header = _parse_object(views[2])
    except _TooDeep:
        header = None
    if header is None:
        raise Dropped("malformed", "header is not a JSON object")
    when = _header_problem(header)
    if isinstance(when, str):
        raise Dropped("malformed", when)
    try:
        content = _parse_object(views[3])
    except _TooDeep:
        return Incoming(header, {}, views[4:], when, too_deep=True)
    if content is None:
        raise Dropped("malformed", "content is not a JSON object")
    return Incoming(header, content, views[4:], when)
