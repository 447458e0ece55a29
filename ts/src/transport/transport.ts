/** The two logical channels of the protocol. */
export type Channel = "request" | "control";

/**
 * A frame to send: bytes, or text that travels as its UTF-8 encoding. The client hands its
 * JSON frames over as text: zeromq.js copies a string straight into the message, while a
 * Buffer over 128 bytes is sent by reference and released later through an extra turn of
 * the event loop and the garbage collector (measured in benchmarks/perf/bridge).
 */
export type OutgoingFrame = Uint8Array | string;

/** One multipart message received on a channel, or word that the channel was reset. */
export interface IncomingFrames {
  channel: Channel;
  frames: Uint8Array[];
  /**
   * Set (with `frames` empty) when the transport had to connect the channel anew: messages
   * in flight on the old connection, both ways, may be lost. Says why.
   */
  reset?: string;
}

/** Endpoints a transport connects to (from the connection file). */
export interface Endpoints {
  request: string;
  control: string;
}

/**
 * Moves opaque multipart messages between the client and the runtime. It knows nothing of
 * signing, ids or correlation: all protocol logic sits above it, so another transport can
 * replace ZeroMQ without touching the runtime client.
 *
 * Concurrency: `send` may be called any number of times without awaiting; messages on one
 * channel leave in call order. Frames passed to `send` must not be modified until its
 * promise resolves.
 */
export interface Transport {
  /** Short name, e.g. `"zeromq"` (shown in benchmarks and errors). */
  readonly name: string;
  /** Queues a message on a channel; resolves once handed to the transport. */
  send(channel: Channel, frames: OutgoingFrame[]): Promise<void>;
  /** Every incoming message, both channels, until {@link close}; one consumer only. */
  incoming(): AsyncIterable<IncomingFrames>;
  /**
   * Optional, in place of {@link incoming}: calls `listener` with each incoming message as
   * it arrives (no async iteration per message). Once called, `incoming()` yields nothing
   * more. The listener must not throw.
   */
  listen?(listener: (message: IncomingFrames) => void): void;
  /** Closes at once, dropping unsent messages; ends {@link incoming}. Idempotent. */
  close(): void;
  /** True once closed. */
  readonly closed: boolean;
}

/** What a transport is told when it connects. */
export interface TransportOptions {
  /**
   * Largest message this client accepts, all frames together, in bytes. A transport that
   * can refuse larger input before allocating it (ZeroMQ's ZMQ_MAXMSGSIZE) does so; the
   * exact check stays with the protocol layer.
   */
  maxMessageBytes?: number;
}

/** Builds and connects a transport. */
export type TransportFactory = (endpoints: Endpoints, options?: TransportOptions) => Promise<Transport>;
