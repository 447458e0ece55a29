"""The session key: 32 random bytes, handed over as 64 hex digits (never in argv)."""

from __future__ import annotations

import os
import stat
import sys
from typing import TextIO

KEY_ENV = "NEARPOS_KEY"


class KeyFileError(ValueError):
    """The key is missing, malformed or stored unsafely."""


def parse_key(text: str, source: str) -> bytes:
    text = text.strip()
    if len(text) != 64:
        raise KeyFileError(
            f"key from {source} must be 64 hex digits (32 bytes), got {len(text)} chars"
        )
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise KeyFileError(f"key from {source} is not hexadecimal") from None


def read_key_stdin(stream: TextIO | None = None) -> bytes:
    """First line of stdin; the stream stays open (its end means the parent died)."""
    stream = stream or sys.stdin
    line = stream.readline()
    if not line:
        raise KeyFileError("stdin closed before a key line arrived")
    return parse_key(line, "stdin")


def read_key_file(path: str) -> bytes:
    mode = os.stat(path).st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"key file {path} is accessible by group or others (mode {stat.S_IMODE(mode):o}); "
            "chmod 600 it"
        )
    with open(path, encoding="ascii") as fh:
        return parse_key(fh.readline(), f"key file {path}")


def read_key_env() -> bytes | None:
    value = os.environ.get(KEY_ENV)
    return None if value is None else parse_key(value, f"${KEY_ENV}")
