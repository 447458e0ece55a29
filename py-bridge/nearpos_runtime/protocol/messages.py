"""Whole messages: content with tensors -> signed frames, and back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import ProtocolError
from .tensors import MAX_DEPTH, decode_buffers, decode_value, encode_value
from .version import PROTOCOL_MAJOR, PROTOCOL_VERSION, TAG
from .wire import (
    Buffer,
    Incoming,
    dumps,
    dumps_text,
    encode_basestring,
    new_msg_id,
    signature,
    utc_now_iso,
)

KNOWN_MSG_TYPES = {
    "request": ("call_request",),
    "control": ("hello_request", "heartbeat_request", "cancel_request", "shutdown_request"),
}


class Codec:
    """Signs and builds the messages of one sender session."""

    def __init__(self, key: bytes, session: str, signed_buffers: bool) -> None:
        self.key = key
        self.session = session
        self.signed_buffers = signed_buffers
        # The header's fixed parts, as JSON text once rather than per message.
        self._session_json = encode_basestring(session)
        self._version_json = encode_basestring(PROTOCOL_VERSION)
        self._signed_json = "true" if signed_buffers else "false"

    def header_bytes(
        self,
        msg_type: str,
        parent_id: str | None,
        descriptors: list[dict[str, Any]],
        msg_id: str,
        date: str,
    ) -> bytes:
        """``dumps(make_header(...))`` for this session, written out directly: the same
        fields in the same order, each value encoded as ``dumps`` encodes it."""
        return (
            f'{{"msg_id":{encode_basestring(msg_id)},"msg_type":{encode_basestring(msg_type)},'
            f'"session":{self._session_json},"date":{encode_basestring(date)},"parent_id":'
            f"{'null' if parent_id is None else encode_basestring(parent_id)},"
            f'"version":{self._version_json},'
            f'"buffers":{dumps_text(descriptors) if descriptors else "[]"},'
            f'"signed_buffers":{self._signed_json}}}'
        ).encode()

    def build(
        self, msg_type: str, content: dict[str, Any], parent_id: str | None = None
    ) -> list[Buffer]:
        """Frames of a message whose ``content`` may hold tensors anywhere."""
        encoded, descriptors, frames = encode_value(content)
        header = self.header_bytes(msg_type, parent_id, descriptors, new_msg_id(), utc_now_iso())
        body = dumps(encoded)
        if self.signed_buffers and frames:
            sig = signature(self.key, [TAG, header, body, *frames])
        else:
            sig = signature(self.key, (TAG, header, body))
        return [TAG, sig, header, body, *frames]

    def error(
        self,
        parent_id: str | None,
        ename: str,
        evalue: str,
        traceback: Sequence[str] = (),
        code: str | None = None,
    ) -> list[Buffer]:
        content: dict[str, Any] = {"ename": ename, "evalue": evalue, "traceback": list(traceback)}
        if code is not None:
            content["code"] = code
        return self.build("error", content, parent_id)


def check_version(header: dict[str, Any]) -> None:
    version = header["version"]
    if version == PROTOCOL_VERSION:
        return
    major = version.split(".", 1)[0]
    if not major.isdigit() or int(major) != PROTOCOL_MAJOR:
        raise ProtocolError(
            "unsupported_version",
            f"protocol version {version!r}; this runtime speaks {PROTOCOL_MAJOR}.x",
        )


def check_msg_type(header: dict[str, Any], channel: str) -> None:
    known = KNOWN_MSG_TYPES[channel]
    if header["msg_type"] not in known:
        raise ProtocolError(
            "unknown_msg_type",
            f"msg_type {header['msg_type']!r} is not served on the {channel} channel; "
            f"known: {', '.join(known)}",
        )


def decode_content(message: Incoming) -> dict[str, Any]:
    """Content with tensors in place; ProtocolError for an authenticated but wrong message."""
    check_version(message.header)
    if message.too_deep:
        raise ProtocolError("malformed", f"the content nests deeper than {MAX_DEPTH} levels")
    depth = message.plain_depth
    if depth is not None and depth <= MAX_DEPTH and not message.buffers:
        if not message.header["buffers"]:
            # No placeholder, nothing too deep, no tensor: the walk would return a copy.
            return message.content
    tensors = decode_buffers(message.header, message.buffers)
    return decode_value(message.content, tensors)
