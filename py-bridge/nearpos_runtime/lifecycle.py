"""Process hygiene: logs on stderr only, and exit as soon as the parent goes away."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger("nearpos_runtime")
PR_SET_PDEATHSIG = 1

# What the quick exit paths (stdin EOF, parent death) remove: files the runtime created,
# then the client's private directory when it asked for that and it holds nothing else.
_exit_files: list[Path] = []
_exit_dir: list[Path] = []


def remove_on_exit(paths: Iterable[Path]) -> None:
    """Files the quick exit paths remove (ipc sockets, the connection file)."""
    _exit_files.extend(paths)


def remove_dir_on_exit(directory: Path) -> None:
    """The directory the quick exit paths remove last, if it is empty by then."""
    _exit_dir[:] = [directory]


def quick_cleanup() -> None:
    """Best-effort removal of the registered files and directory; never raises."""
    for path in list(_exit_files):
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass
    for directory in list(_exit_dir):
        try:
            directory.rmdir()  # fails, as meant, when something else is in it
        except OSError:
            pass


def exit_now(code: int, why: str) -> None:
    """Clean up the registered paths and end the process at once (no waiting on threads)."""
    quick_cleanup()
    log.warning("%s", why)
    logging.shutdown()
    os._exit(code)


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=level,
        format="%(asctime)s nearpos-runtime %(levelname)s %(name)s: %(message)s",
    )


def stdout_to_stderr() -> None:
    """Send Python and C-level stdout to stderr: a stray print never lands elsewhere."""
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), 1)
    sys.stdout = sys.stderr


def exit_on_stdin_eof(stream: BinaryIO | None = None) -> threading.Thread:
    """Daemon thread reading stdin to end-of-file, then ending the process at once."""
    source = stream if stream is not None else sys.stdin.buffer

    def watch() -> None:
        try:
            while source.read(65536):
                pass
        except (OSError, ValueError):
            pass
        exit_now(1, "stdin closed: parent gone, exiting")

    thread = threading.Thread(target=watch, name="nearpos-parent-watch", daemon=True)
    thread.start()
    return thread


def parent_gone(original_ppid: int) -> bool:
    return os.getppid() != original_ppid


def set_parent_death_signal(original_ppid: int) -> bool:
    """Linux: SIGTERM this process when its parent dies. False where unsupported.

    SIGTERM rather than SIGKILL, so that the exit can remove the ipc sockets, the connection
    file and the private directory first. The handler installed here (and any later SIGTERM
    handler, see ``serve``) tells a parent's death from a plain SIGTERM by the parent pid.
    Must run on the main thread."""
    if not sys.platform.startswith("linux"):
        return False

    def on_term(_sig: int, _frame: object) -> None:
        # Before serving, SIGTERM for any reason means stop now.
        exit_now(1, "parent gone, exiting" if parent_gone(original_ppid) else "SIGTERM, exiting")

    signal.signal(signal.SIGTERM, on_term)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if parent_gone(original_ppid):  # the parent died before prctl took effect
        exit_now(1, "parent gone before start, exiting")
    return True


def exit_when_main_thread_ends(code: int = 1) -> None:
    """End the process as soon as the main thread ends, before anything joins worker
    threads busy in a method (pythonia: its reader is the main thread and ends at
    end-of-file of its pipe, that is when Node went away)."""
    import concurrent.futures.thread  # noqa: F401  (its exit hook must be registered first)

    def exit_now() -> None:
        log.warning("main thread ended: parent gone, exiting")
        logging.shutdown()
        os._exit(code)

    # Hooks registered here run in reverse order at interpreter shutdown, before
    # threads are joined, so this one runs before the thread pool's join.
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        register(exit_now)
        return

    def watch() -> None:  # pragma: no cover - Python without _register_atexit
        threading.main_thread().join()
        exit_now()

    threading.Thread(target=watch, name="nearpos-main-watch", daemon=True).start()
