"""One training at a time per process (:data:`RUN_QUEUE`).

Trainings of one process run one at a time, in arrival order: torch's global generator
(model init, dropout, a sampler without its own seed), the deterministic flag and the
intra-op thread count are process-wide, so two runs at once would change each other's
results. A run that has to wait emits ``queued`` events and can be cancelled while it waits.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from .errors import TrainingError


class RunQueue:
    """One training at a time per process, first come first served.

    ``wait_turn`` returns once every run that arrived earlier has left; meanwhile it reports
    how many runs are ahead (the running one included) through ``on_wait`` whenever that
    number changes, and calls ``poll`` about every ``interval`` seconds (a cancellation
    check: whatever it raises leaves the queue and propagates). ``leave`` ends a turn.
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self._cond = threading.Condition()
        self._order: deque[tuple[object, int]] = deque()  # (ticket, thread); head runs

    def __len__(self) -> int:
        with self._cond:
            return len(self._order)

    def wait_turn(
        self, ticket: object, on_wait: Callable[[int], None], poll: Callable[[], None]
    ) -> float:
        """Seconds waited (0.0 when nothing was ahead)."""
        me = threading.get_ident()
        with self._cond:
            if self._order and self._order[0][1] == me:
                # It would wait for itself for ever (a run started from another's callback).
                raise TrainingError("a training cannot start another one from its own thread")
            self._order.append((ticket, me))
        t0 = time.perf_counter()
        reported = 0
        try:
            while True:
                with self._cond:
                    ahead = self._position(ticket)
                    if ahead and ahead == reported:
                        self._cond.wait(self.interval)
                        ahead = self._position(ticket)
                if ahead == 0:
                    return time.perf_counter() - t0 if reported else 0.0
                if ahead != reported:
                    on_wait(ahead)
                    reported = ahead
                poll()
        except BaseException:
            self.leave(ticket)
            raise

    def leave(self, ticket: object) -> None:
        with self._cond:
            self._order = deque(item for item in self._order if item[0] is not ticket)
            self._cond.notify_all()

    def _position(self, ticket: object) -> int:
        return next(i for i, (t, _) in enumerate(self._order) if t is ticket)


#: The process's queue of trainings (the runtime's ``train`` calls and Python callers alike).
RUN_QUEUE = RunQueue()
