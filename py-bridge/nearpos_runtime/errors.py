"""Exceptions a method may raise to shape the ``error`` message it ends with."""

from __future__ import annotations


class NearposError(Exception):
    """Base for runtime errors; ``code`` travels as the error's machine-readable code."""

    code: str | None = None

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class InvalidParams(NearposError):
    """Params fail the method's schema, or a value it names (a sampler, a loss) is unknown."""

    code = "invalid_params"


class UnknownMethod(NearposError):
    code = "unknown_method"


class UnknownHandle(NearposError, LookupError):
    """An object-store id that does not exist (any more) or is of another kind."""

    code = "unknown_handle"


class RuntimeShuttingDown(NearposError):
    code = "shutting_down"


class MessageTooLarge(NearposError):
    """A message the runtime would send is larger than the receiver accepts
    (``max_message_bytes``); raised by ``ctx.emit``, and sent instead of a terminal message
    that is too large."""

    code = "message_too_large"

    def __init__(self, what: str, nbytes: int, limit: int) -> None:
        super().__init__(f"{what} takes {nbytes} bytes, more than max_message_bytes ({limit})")
        self.nbytes = nbytes
        self.limit = limit

    def content(self) -> dict[str, object]:
        """The ``error`` content: the usual fields plus ``nbytes`` and ``max_message_bytes``."""
        return {
            "ename": type(self).__name__,
            "evalue": str(self),
            "traceback": [],
            "code": self.code,
            "nbytes": self.nbytes,
            "max_message_bytes": self.limit,
        }


class Cancelled(BaseException):
    """Raised by ``CallContext.check_cancelled``; ends the call with a ``cancelled`` message.

    A BaseException so that a method's own ``except Exception`` does not swallow it.
    """

    def __init__(self, reason: str = "cancel_request") -> None:
        super().__init__(reason)
        self.reason = reason
