"""The protocol version this runtime speaks; docs/protocol.md holds the same line."""

PROTOCOL_VERSION = "1.0"
PROTOCOL_MAJOR = int(PROTOCOL_VERSION.split(".")[0])
TAG = b"nearpos/1"
