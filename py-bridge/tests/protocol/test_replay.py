"""Replay window: ids once, dates within the window, bounded memory."""

from __future__ import annotations

import time

import pytest

from nearpos_runtime.protocol.errors import Dropped
from nearpos_runtime.protocol.replay import ReplayGuard
from nearpos_runtime.protocol.wire import utc_now_iso


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def test_id_seen_twice_is_replayed() -> None:
    guard = ReplayGuard()
    guard.check("a" * 32, utc_now_iso())
    with pytest.raises(Dropped, match="replayed"):
        guard.check("a" * 32, utc_now_iso())
    guard.check("b" * 32, utc_now_iso())


@pytest.mark.parametrize("offset", [-301.0, 301.0])
def test_dates_outside_window(offset: float) -> None:
    now = time.time()
    with pytest.raises(Dropped, match="replayed"):
        ReplayGuard(window_s=300).check("c" * 32, iso(now + offset), now=now)
    ReplayGuard(window_s=300).check("c" * 32, iso(now + offset * 0.9), now=now)


def test_old_ids_expire_and_memory_is_bounded() -> None:
    now = time.time()
    guard = ReplayGuard(window_s=10)
    guard.check("old", iso(now - 9), now=now)
    guard.check("new", iso(now), now=now + 5)  # expires "old" (its date left the window)
    assert len(guard) == 1
    small = ReplayGuard(window_s=300, max_ids=3)
    for i in range(5):
        small.check(f"id{i}", iso(now + i * 0.01), now=now)
    assert len(small) == 3
    with pytest.raises(Dropped, match="older than"):  # an evicted id's date is refused now
        small.check("id0", iso(now), now=now)


def test_bad_date_is_malformed() -> None:
    with pytest.raises(Dropped, match="malformed"):
        ReplayGuard().check("d", "yesterday")
