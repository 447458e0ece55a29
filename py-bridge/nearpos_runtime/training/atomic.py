"""Atomic file replacement for checkpoints and caches.

Each write goes to its own temporary file in the target's directory
(``.<name>.<pid>-<random>.tmp``), is flushed and fsynced, then renamed over the target with
``os.replace``; the directory is fsynced after the rename. So a reader sees the previous
file or the new one, never a mix, concurrent writers to one path never share a temporary
(the last rename wins), and a crash cannot leave a half-written target. A failed write
removes its own temporary; temporaries left by killed processes are removed by the next
write to the same path (their process is gone and they are older than a minute).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

TMP_SUFFIX = ".tmp"
#: A temporary is only taken for abandoned when its process is gone and it is this old:
#: a process id seen from another pid namespace (a container sharing the directory) may
#: look dead while its writer is still busy.
STALE_AFTER_S = 60.0


def _tmp_pattern(target: Path) -> re.Pattern[str]:
    return re.compile(re.escape(f".{target.name}.") + r"(\d+)-[0-9a-f]+" + re.escape(TMP_SUFFIX))


def temporaries(target: Path) -> list[Path]:
    """Temporaries of writes to ``target`` that are in progress or were abandoned."""
    pattern = _tmp_pattern(target)
    try:
        names = os.listdir(target.parent)
    except FileNotFoundError:
        return []
    return [target.parent / n for n in names if pattern.fullmatch(n)]


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(target: Path, older_than_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove temporaries of ``target`` whose writing process is gone; returns them."""
    pattern = _tmp_pattern(target)
    removed = []
    now = time.time()
    for tmp in temporaries(target):
        match = pattern.fullmatch(tmp.name)
        if match is None or _alive(int(match.group(1))):
            continue
        with contextlib.suppress(FileNotFoundError):
            if now - tmp.stat().st_mtime < older_than_s:
                continue
            tmp.unlink()
            removed.append(tmp)
    return removed


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on directories; the rename still happened
    finally:
        os.close(fd)


def write_atomic(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Replace ``path`` with what ``write(file)`` writes, atomically and durably."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(8)}{TMP_SUFFIX}")
    # O_EXCL: the name is ours alone; mode 0666 lets the umask decide, as open() would.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)
    return target
