"""Whole messages: content with tensors -> signed frames, and back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import ProtocolError
from .tensors import MAX_DEPTH, decode_buffers, decode_value, encode_value
from .version import PROTOCOL_MAJOR
from .wire import Buffer, Incoming, encode, make_header

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

    def build(
        self, msg_type: str, content: dict[str, Any], parent_id: str | None = None
    ) -> list[Buffer]:
        """Frames of a message whose ``content`` may hold tensors anywhere."""
        encoded, descriptors, frames = encode_value(content)
        header = make_header(
            msg_type,
            self.session,
            parent_id=parent_id,
            buffers=descriptors,
            signed_buffers=self.signed_buffers,
        )
        return encode(self.key, header, encoded, frames)

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
    tensors = decode_buffers(message.header, message.buffers)
    return decode_value(message.content, tensors)
