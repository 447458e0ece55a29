"""What the runtime says about itself: hello_reply content and the ``schema`` command."""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

import torch

from . import results
from .plugins import plugin_index
from .protocol.version import PROTOCOL_VERSION
from .registry import list_methods


def runtime_version() -> str:
    try:
        return metadata.version("nearpos-runtime")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def devices() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = [{"type": "cpu", "index": 0, "name": "cpu"}]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            found.append(
                {"type": "cuda", "index": i, "name": props.name, "memory_bytes": props.total_memory}
            )
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append({"type": "mps", "index": 0, "name": "mps"})
    return found


def schemas() -> dict[str, Any]:
    """Methods with params, result and event schemas, and plugins with config schemas (as
    in hello_reply)."""
    index = plugin_index()
    return {
        "protocol_version": PROTOCOL_VERSION,
        "methods": [m.describe() | results.describe(m.name) for m in list_methods()],
        "plugins": index.describe(),
        "plugin_errors": list(index.errors),
    }


def hello_content(
    session: str, pid: int, signed_buffers: bool, max_message_bytes: int
) -> dict[str, Any]:
    described = schemas()
    return {
        "protocol_version": PROTOCOL_VERSION,
        "runtime_version": runtime_version(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "pid": pid,
        "session": session,
        "signed_buffers": signed_buffers,
        "max_message_bytes": max_message_bytes,
        "devices": devices(),
        "methods": described["methods"],
        "plugins": described["plugins"],
        "plugin_errors": described["plugin_errors"],
    }
