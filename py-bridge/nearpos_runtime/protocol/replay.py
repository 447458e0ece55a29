"""Replay protection: each msg_id once, and dates within a window of the receiver's clock."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from .errors import Dropped
from .wire import date_seconds

DEFAULT_WINDOW_S = 300.0


class ReplayGuard:
    """Remembers msg_ids for as long as their date could still pass the date check.

    An id older than the window is rejected by the date check alone, so it can be
    forgotten. If more than ``max_ids`` ids fall inside the window, the oldest are
    forgotten and every date up to the newest forgotten one is refused (``floor``):
    memory stays bounded without letting a forgotten id through again.
    Thread-safe: both channels share one guard.
    """

    def __init__(self, window_s: float = DEFAULT_WINDOW_S, max_ids: int = 1_000_000) -> None:
        self.window_s = window_s
        self.max_ids = max_ids
        self._seen: OrderedDict[str, float] = OrderedDict()  # msg_id -> its date (epoch s)
        self._floor = float("-inf")
        # The date of the oldest id kept (inf: none): nothing expires before it leaves the
        # window, so the expiry walk runs only then rather than on every message.
        self._oldest = float("inf")
        self._lock = threading.Lock()

    def check(
        self, msg_id: str, date: str, now: float | None = None, when: float | None = None
    ) -> None:
        """Raise Dropped("replayed") for a seen id or an out-of-window date, else record it.

        ``when`` is ``date`` already parsed to epoch seconds (saves parsing it twice)."""
        now = time.time() if now is None else now
        if when is None:
            try:
                when = date_seconds(date)
            except ValueError:
                raise Dropped("malformed", f"bad date {date!r}") from None
        if abs(now - when) > self.window_s:
            raise Dropped("replayed", f"date {date} is more than {self.window_s:.0f} s away")
        seen = self._seen
        with self._lock:
            if self._oldest < now - self.window_s:
                self._expire(now)
            if msg_id in seen:
                raise Dropped("replayed", f"msg_id {msg_id} seen before")
            if when <= self._floor:
                raise Dropped("replayed", "date older than the retained id window")
            if not seen:
                self._oldest = when
            seen[msg_id] = when
            if len(seen) > self.max_ids:
                while len(seen) > self.max_ids:
                    _, forgotten = seen.popitem(last=False)
                    self._floor = max(self._floor, forgotten)
                self._oldest = next(iter(seen.values()), float("inf"))

    def _expire(self, now: float) -> None:
        # Ids are kept in arrival order, which tracks date order closely; stop at the
        # first one still inside the window (a few stragglers may live a little longer).
        horizon = now - self.window_s
        seen = self._seen
        while seen:
            msg_id, when = next(iter(seen.items()))
            if when >= horizon:
                self._oldest = when
                return
            del seen[msg_id]
        self._oldest = float("inf")

    def __len__(self) -> int:
        return len(self._seen)
