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
import os
import struct
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from json.decoder import WHITESPACE, JSONDecoder
from json.encoder import JSONEncoder, c_make_encoder, encode_basestring
from typing import Any

try:  # OpenSSL's HMAC object, whose copy() is one C call (hmac.HMAC wraps it in Python)
    from _hashlib import hmac_new as _hmac_new
except ImportError:  # pragma: no cover - a Python built without OpenSSL
    _hmac_new = None

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
_length = struct.Struct(">Q").pack
# HMAC objects keyed once per key (the inner and outer pads are computed once), copied per
# message: a runtime and its client each use one key.
_MACS: dict[bytes, Any] = {}


def _keyed(key: bytes) -> Any:
    mac = _MACS.get(key)
    if mac is None:
        if len(_MACS) > 64:  # tests make many keys; a process normally has one or two
            _MACS.clear()
        if _hmac_new is not None:
            mac = _hmac_new(key, digestmod="sha256")
        else:  # pragma: no cover
            mac = hmac.new(key, digestmod="sha256")
        _MACS[key] = mac
    return mac.copy()


def signature(key: bytes, frames: Iterable[Buffer]) -> bytes:
    """HMAC-SHA256 over the length-prefixed ``frames``, as 64 lowercase hex ASCII bytes."""
    mac = _keyed(key)
    small: list[Buffer] = []
    for frame in frames:
        kind = type(frame)
        if kind is bytes:
            nbytes = len(frame)
        elif kind is memoryview:
            nbytes = frame.nbytes  # type: ignore[union-attr]
        else:
            nbytes = memoryview(frame).nbytes
        if nbytes <= _JOIN_MAX:
            small += (_length(nbytes), frame)
        else:
            small.append(_length(nbytes))
            mac.update(b"".join(small))
            small.clear()
            mac.update(frame)
    if small:
        mac.update(b"".join(small))
    return mac.hexdigest().encode("ascii")


_encoder = JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def dumps_text(obj: Any) -> str:
    """``dumps`` as text."""
    if c_make_encoder is None:  # pragma: no cover - a Python without the _json module
        return _encoder.encode(obj)
    # What _encoder.encode does, without rebuilding its closures per call: the C encoder
    # with a fresh circular-reference memo (same output, same errors).
    encode = c_make_encoder(
        {}, _encoder.default, encode_basestring, None, ":", ",", False, False, False
    )
    return "".join(encode(obj, 0))


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON; NaN and infinities are refused (JSON has no spelling for them)."""
    return dumps_text(obj).encode()


# Random bytes for ids, drawn from the OS 4 KiB at a time (one system call per 256 ids).
_ids = bytearray()
_ids_lock = threading.Lock()


def new_msg_id() -> str:
    """32 lowercase hex digits from the OS's cryptographic random source."""
    with _ids_lock:
        if not _ids:
            _ids.extend(os.urandom(4096))
        raw = _ids[-16:]
        del _ids[-16:]
    return raw.hex()


def _forget_ids() -> None:
    # A forked child must not hand out the ids its parent still holds.
    global _ids_lock
    _ids.clear()
    _ids_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_ids)


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


# "YYYY-MM-DDTHH:MM:SS" -> its epoch second, for dates of the form every sender writes
# (``utc_now_iso``): consecutive messages share the second, so it is parsed once.
_SECONDS: dict[str, int] = {}


def date_seconds(text: str) -> float:
    """``parse_date(text).timestamp()``, the same value and the same errors, parsing the
    date-and-second part of ``YYYY-MM-DDTHH:MM:SS.mmmZ`` once per second."""
    if len(text) == 24 and text[19] == "." and text[23] == "Z":
        millis = text[20:23]
        if millis.isascii() and millis.isdigit():
            prefix = text[:19]
            second = _SECONDS.get(prefix)
            if second is None:
                try:
                    whole = parse_date(prefix + "Z").timestamp()
                except ValueError:
                    return parse_date(text).timestamp()
                second = int(whole)
                if len(_SECONDS) > 64:
                    _SECONDS.clear()
                _SECONDS[prefix] = second
            # the arithmetic of datetime.timestamp(): whole microseconds over 10**6
            return (second * 1_000_000 + int(millis) * 1000) / 1_000_000
    return parse_date(text).timestamp()


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
    # An upper bound of the content's nesting (its count of "{" and "["), set only when its
    # text cannot hold a "$tensor" key (no "$tensor", no \u escape that could spell one):
    # such content needs no walk when it is shallow enough (``messages.decode_content``).
    plain_depth: int | None = None

    @property
    def msg_id(self) -> str:
        return str(self.header["msg_id"])

    @property
    def msg_type(self) -> str:
        return str(self.header["msg_type"])


class _TooDeep(Exception):
    pass


_scan = JSONDecoder().scan_once  # the scanner json.loads itself ends up in
_blank = WHITESPACE.match


def _parse_object(data: memoryview) -> tuple[dict[str, Any] | None, str | None]:
    """(the JSON object in ``data`` or None when it is not one, its text when it was read
    by the fast path); _TooDeep when it nests deeper than the parser's recursion allows."""
    try:
        try:
            text: str | None = str(data, "utf-8", "surrogatepass")
        except UnicodeDecodeError:
            text = None  # maybe UTF-16/32, which json.loads detects: the plain path
        if text is not None and text[:1] == "{" and text[1:2] != "\0":
            # json.loads on bytes picks UTF-8 for these (no BOM, no NUL in the first two
            # bytes) and decodes them as above; then it scans, and refuses trailing data.
            value, end = _scan(text, 0)
            if _blank(text, end).end() != len(text):
                return None, None
            return value, text
        value = json.loads(bytes(data))
    except RecursionError:
        raise _TooDeep() from None
    except (UnicodeDecodeError, json.JSONDecodeError, StopIteration):
        return None, None
    return (value if isinstance(value, dict) else None), None


def _header_problem(header: dict[str, Any]) -> str | float:
    """What is wrong with ``header``, or (all fine) its date as epoch seconds."""
    for name, types in HEADER_FIELDS.items():
        if name not in header:
            return f"header lacks {name!r}"
        if not isinstance(header[name], types):
            return f"header.{name} has the wrong type"
    try:
        return date_seconds(header["date"])
    except ValueError:
        return f"header.date {header['date']!r} is not an ISO 8601 date with a time zone"


def _header_when(h: dict[str, Any]) -> str | float:
    """``_header_problem`` in one expression for a header that is fine (parsed JSON holds
    exact types, so ``type(x) is`` tests what ``isinstance`` does there)."""
    if (
        type(h.get("msg_id")) is str
        and type(h.get("msg_type")) is str
        and type(h.get("session")) is str
        and type(h.get("date")) is str
        and "parent_id" in h
        and (h["parent_id"] is None or type(h["parent_id"]) is str)
        and type(h.get("version")) is str
        and type(h.get("buffers")) is list
        and type(h.get("signed_buffers")) is bool
    ):
        try:
            return date_seconds(h["date"])
        except ValueError:
            pass
    return _header_problem(h)


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
    total = sum([v.nbytes for v in views])
    if total > max_message_bytes:
        raise Dropped("oversized", f"{total} bytes > {max_message_bytes}")
    covered = [views[0], views[2], views[3]]
    if signed_buffers:
        covered.extend(views[4:])
    expected = signature(key, covered)
    if not hmac.compare_digest(expected, views[1]):
        raise Dropped("bad_signature")
    try:
        header = _parse_object(views[2])[0]
    except _TooDeep:
        header = None
    if header is None:
        raise Dropped("malformed", "header is not a JSON object")
    when = _header_when(header)
    if type(when) is str:
        raise Dropped("malformed", when)
    try:
        content, text = _parse_object(views[3])
    except _TooDeep:
        return Incoming(header, {}, views[4:], when, too_deep=True)
    if content is None:
        raise Dropped("malformed", "content is not a JSON object")
    depth = None
    if text is not None and "$tensor" not in text and "\\u" not in text:
        depth = text.count("{") + text.count("[")
    return Incoming(header, content, views[4:], when, plain_depth=depth)
