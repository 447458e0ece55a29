"""Process hygiene: logs on stderr only, and exit as soon as the parent goes away."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
from typing import BinaryIO

log = logging.getLogger("nearpos_runtime")
PR_SET_PDEATHSIG = 1


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
        log.warning("stdin closed: parent gone, exiting")
        logging.shutdown()
        os._exit(1)

    thread = threading.Thread(target=watch, name="nearpos-parent-watch", daemon=True)
    thread.start()
    return thread


def set_parent_death_signal(original_ppid: int) -> bool:
    """Linux: SIGKILL this process when its parent dies. False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != original_ppid:  # the parent died before prctl took effect
        os._exit(1)
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
