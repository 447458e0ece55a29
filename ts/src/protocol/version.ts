/**
 * Version of the nearpos runtime protocol this client speaks (docs/protocol.md).
 * A peer accepts any message of the same major version.
 */
export const PROTOCOL_VERSION = "1.0";

/** Frame 0 of every message: the protocol tag, carrying the major version. */
export const PROTOCOL_TAG = `nearpos/${PROTOCOL_VERSION.split(".")[0]}`;

/** Major version number of {@link PROTOCOL_VERSION}. */
export const PROTOCOL_MAJOR = Number(PROTOCOL_VERSION.split(".")[0]);
