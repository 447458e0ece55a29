"""End this process when the process that started it is gone (no orphans left behind)."""

from __future__ import annotations

import os
import signal
import threading
import time


def exit_with_parent(sig: int = signal.SIGKILL, interval: float = 0.2) -> None:
    """A daemon thread that sends ``sig`` to this process once its parent has changed (the
    parent died and the process was re-parented)."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os.kill(os.getpid(), sig)
                return

    threading.Thread(target=watch, name="nearpos-parent-watch", daemon=True).start()
