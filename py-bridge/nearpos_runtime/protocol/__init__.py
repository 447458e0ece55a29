"""Wire protocol v1: framing, signatures, tensors and replay protection (docs/protocol.md)."""

from .errors import Dropped, ProtocolError
from .version import PROTOCOL_VERSION, TAG

__all__ = ["PROTOCOL_VERSION", "TAG", "Dropped", "ProtocolError"]
