"""Errors of a training run (re-exported by :mod:`.trainer`)."""

from __future__ import annotations


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, bad checkpoint, missing device)."""


class ConfigError(TrainingError):
    """A training that the config itself rules out (a missing or mismatched checkpoint, a
    device not present, a metric not measured); the message names the field."""

    code = "invalid_params"


class TrainingCancelled(Exception):
    """Raised when the ``cancel`` callback returned True; ``step`` steps had completed."""

    def __init__(self, step: int) -> None:
        super().__init__(f"training cancelled after step {step}")
        self.step = step


class WorkerFailed(TrainingError):
    """A process of a distributed run failed: ``rank`` (global), its exit code or the signal
    that ended it; the run's other processes were stopped."""

    code = "worker_failed"

    def __init__(
        self, message: str, rank: int | None, exitcode: int | None, signal: str | None
    ) -> None:
        super().__init__(message)
        self.rank, self.exitcode, self.signal = rank, exitcode, signal


class RendezvousFailed(TrainingError):
    """The processes of a distributed run did not all meet (a node missing, an endpoint that
    cannot be reached) within ``distributed.rdzv_timeout``."""

    code = "rendezvous_failed"
