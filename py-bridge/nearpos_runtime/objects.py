"""Runtime-wide store of objects (models, data sets) that clients hold by handle."""

from __future__ import annotations

import secrets
import threading
from typing import Any

from .errors import UnknownHandle


class ObjectStore:
    """Thread-safe map ``id -> (kind, object)``; ids look like ``model-3f9c0a1b2c3d4e5f``."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[str, Any]] = {}
        self._lock = threading.Lock()

    def put(self, obj: Any, kind: str) -> str:
        if not kind or not kind.replace("_", "").isalnum():
            raise ValueError(f"object kind {kind!r} must be a non-empty word")
        handle = f"{kind}-{secrets.token_hex(8)}"
        with self._lock:
            self._items[handle] = (kind, obj)
        return handle

    def get(self, handle: str, kind: str | None = None) -> Any:
        """The object behind ``handle``; UnknownHandle if missing or not of ``kind``."""
        with self._lock:
            item = self._items.get(handle)
        if item is None:
            what = f"{kind} handle" if kind else "handle"
            raise UnknownHandle(f"unknown {what} {handle!r} (released, or never created here)")
        if kind is not None and item[0] != kind:
            raise UnknownHandle(f"handle {handle!r} is a {item[0]}, not a {kind}")
        return item[1]

    def kind(self, handle: str) -> str | None:
        with self._lock:
            item = self._items.get(handle)
        return item[0] if item else None

    def delete(self, handle: str) -> bool:
        """Forget ``handle``; False if it was not there."""
        with self._lock:
            return self._items.pop(handle, None) is not None

    def list(self) -> dict[str, str]:
        """``id -> kind`` of every object held."""
        with self._lock:
            return {h: k for h, (k, _) in self._items.items()}

    def __len__(self) -> int:
        return len(self._items)
