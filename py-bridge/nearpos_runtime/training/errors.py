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
