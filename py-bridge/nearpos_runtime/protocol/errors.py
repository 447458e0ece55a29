"""Failures of incoming messages: dropped silently, or answered with a ProtocolError."""

from __future__ import annotations

DROP_REASONS = ("malformed", "oversized", "bad_signature", "replayed")


class Dropped(Exception):
    """The message fails a check that happens before (or is) authentication.

    It is dropped without an answer and counted under ``reason``.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in DROP_REASONS:
            raise ValueError(f"unknown drop reason {reason!r}")
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class ProtocolError(Exception):
    """An authenticated message that is still wrong; answered with ``ename: ProtocolError``."""

    codes = ("malformed", "bad_tensor", "unsupported_version", "unknown_msg_type")

    def __init__(self, code: str, message: str) -> None:
        if code not in self.codes:
            raise ValueError(f"unknown ProtocolError code {code!r}")
        super().__init__(message)
        self.code = code
