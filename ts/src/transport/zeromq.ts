import { Dealer } from "zeromq";
import type { Channel, Endpoints, IncomingFrames, OutgoingFrame, Transport, TransportOptions } from "./transport.ts";
import { AsyncQueue } from "./queue.ts";
import { socketFrameLimit } from "../protocol/wire.ts";

/** How long after a disconnect ZeroMQ gets to show that it reconnects by itself. */
const RECONNECT_GRACE_MS = 1000;

/**
 * ZeroMQ transport: one DEALER per channel, linger 0 (so exit never hangs on unsent
 * messages), and a send queue per socket, since zeromq.js allows one pending send.
 *
 * With `maxMessageBytes`, ZeroMQ refuses a frame far over it as its size arrives
 * (ZMQ_MAXMSGSIZE: the limit plus headroom), before allocating it, by closing that
 * connection; a connecting socket then does not reconnect by itself. The transport sees
 * the disconnect that no reconnect follows, connects again, and reports it as a `reset`
 * (what was in flight on that connection is lost).
 */
export class ZeroMQTransport implements Transport {
  readonly name = "zeromq";
  private readonly sockets: Record<Channel, Dealer>;
  /** Sends handed over and not yet settled, per channel, and the last of them. */
  private readonly inFlight: Record<Channel, number> = { request: 0, control: 0 };
  private readonly last: Record<Channel, Promise<void> | undefined> = { request: undefined, control: undefined };
  private readonly settled: Record<Channel, () => void> = {
    request: () => void this.inFlight.request--,
    control: () => void this.inFlight.control--,
  };
  private readonly queue = new AsyncQueue<IncomingFrames>();
  private listener: ((message: IncomingFrames) => void) | undefined;
  private isClosed = false;

  private constructor(endpoints: Endpoints, options: TransportOptions) {
    const limit = options.maxMessageBytes === undefined ? -1 : socketFrameLimit(options.maxMessageBytes);
    const make = (endpoint: string): Dealer => {
      const s = new Dealer({ linger: 0, sendHighWaterMark: 0, receiveHighWaterMark: 0, maxMessageSize: limit });
      s.connect(endpoint);
      return s;
    };
    this.sockets = { request: make(endpoints.request), control: make(endpoints.control) };
    void this.pump("request");
    void this.pump("control");
    if (limit >= 0) {
      void this.watchCuts("request", endpoints.request);
      void this.watchCuts("control", endpoints.control);
    }
  }

  /** Connects both channels. ZeroMQ connects lazily: this does not wait for the peer. */
  static async connect(endpoints: Endpoints, options: TransportOptions = {}): Promise<ZeroMQTransport> {
    return new ZeroMQTransport(endpoints, options);
  }

  get closed(): boolean {
    return this.isClosed;
  }

  send(channel: Channel, frames: OutgoingFrame[]): Promise<void> {
    if (this.isClosed) return Promise.reject(new Error("transport closed"));
    const socket = this.sockets[channel];
    let sent: Promise<void>;
    if (this.inFlight[channel] === 0) {
      // Nothing queued: hand it to ZeroMQ now (it sends at once when it can), not a
      // microtask later behind a chain.
      try {
        sent = socket.send(frames);
      } catch (err) {
        return Promise.reject(err);
      }
    } else {
      // zeromq.js takes one send at a time: this one waits for the one before, whether
      // that succeeded or failed (its own caller sees a failure).
      const go = (): Promise<void> | undefined => (this.isClosed ? undefined : socket.send(frames));
      sent = (this.last[channel] as Promise<void>).then(go, go) as Promise<void>;
    }
    this.inFlight[channel]++;
    this.last[channel] = sent;
    sent.then(this.settled[channel], this.settled[channel]);
    return sent;
  }

  incoming(): AsyncIterable<IncomingFrames> {
    return this.queue;
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    for (const s of Object.values(this.sockets)) s.close();
    this.queue.end();
  }

  // A disconnect followed by no reconnect attempt is ZeroMQ's answer to a protocol error
  // (here: a frame over ZMQ_MAXMSGSIZE): connect anew, and say so.
  private async watchCuts(channel: Channel, endpoint: string): Promise<void> {
    const socket = this.sockets[channel];
    let pending: NodeJS.Timeout | undefined;
    try {
      for await (const event of socket.events) {
        if (event.type === "disconnect") {
          clearTimeout(pending);
          pending = setTimeout(() => this.reconnect(channel, endpoint), RECONNECT_GRACE_MS);
          pending.unref();
        } else if (event.type === "connect:retry" || event.type === "connect:delay" || event.type === "connect") {
          clearTimeout(pending); // ZeroMQ reconnects by itself
          pending = undefined;
        }
      }
    } catch {
      // The socket was closed: the watch ends with it.
    } finally {
      clearTimeout(pending);
    }
  }

  private reconnect(channel: Channel, endpoint: string): void {
    if (this.isClosed) return;
    const socket = this.sockets[channel];
    try {
      socket.disconnect(endpoint);
    } catch {
      // Already forgotten by ZeroMQ.
    }
    socket.connect(endpoint);
    this.deliver({
      channel,
      frames: [],
      reset: "ZeroMQ closed the connection: the peer sent a frame over this client's maxMessageBytes (refused before it was allocated)",
    });
  }

  listen(listener: (message: IncomingFrames) => void): void {
    this.listener = listener;
    for (const message of this.queue.takeAll()) this.deliver(message); // arrived before
  }

  private deliver(message: IncomingFrames): void {
    if (!this.listener) {
      this.queue.push(message);
      return;
    }
    try {
      this.listener(message);
    } catch {
      // A failing listener must not stop the receiving.
    }
  }

  private async pump(channel: Channel): Promise<void> {
    const socket = this.sockets[channel];
    try {
      // receive() itself rather than the socket's async iterator (one async step less).
      while (!this.isClosed) this.deliver({ channel, frames: await socket.receive() });
    } catch {
      // The socket was closed under a pending receive: the normal way out.
    }
  }
}
