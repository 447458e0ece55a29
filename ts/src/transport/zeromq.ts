import { Dealer } from "zeromq";
import type { Channel, Endpoints, IncomingFrames, Transport } from "./transport.ts";
import { AsyncQueue } from "./queue.ts";

/**
 * ZeroMQ transport: one DEALER per channel, linger 0 (so exit never hangs on unsent
 * messages), and a send queue per socket, since zeromq.js allows one pending send.
 */
export class ZeroMQTransport implements Transport {
  readonly name = "zeromq";
  private readonly sockets: Record<Channel, Dealer>;
  private readonly tails: Record<Channel, Promise<void>>;
  private readonly queue = new AsyncQueue<IncomingFrames>();
  private isClosed = false;

  private constructor(endpoints: Endpoints) {
    const make = (endpoint: string): Dealer => {
      const s = new Dealer({ linger: 0, sendHighWaterMark: 0, receiveHighWaterMark: 0 });
      s.connect(endpoint);
      return s;
    };
    this.sockets = { request: make(endpoints.request), control: make(endpoints.control) };
    this.tails = { request: Promise.resolve(), control: Promise.resolve() };
    void this.pump("request");
    void this.pump("control");
  }

  /** Connects both channels. ZeroMQ connects lazily: this does not wait for the peer. */
  static async connect(endpoints: Endpoints): Promise<ZeroMQTransport> {
    return new ZeroMQTransport(endpoints);
  }

  get closed(): boolean {
    return this.isClosed;
  }

  send(channel: Channel, frames: Uint8Array[]): Promise<void> {
    if (this.isClosed) return Promise.reject(new Error("transport closed"));
    const socket = this.sockets[channel];
    const next = this.tails[channel].then(() => (this.isClosed ? undefined : socket.send(frames)));
    // The chain must survive a failed send; the caller still sees the failure.
    this.tails[channel] = next.catch(() => undefined);
    return next;
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

  private async pump(channel: Channel): Promise<void> {
    const socket = this.sockets[channel];
    try {
      for await (const frames of socket) this.queue.push({ channel, frames });
    } catch {
      // The socket was closed under a pending receive: the normal way out.
    }
  }
}
