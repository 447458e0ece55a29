import * as crypto from "node:crypto";
import { createHmac, randomFillSync, timingSafeEqual } from "node:crypto";
import { PROTOCOL_TAG, PROTOCOL_VERSION } from "./version.ts";
import type { BufferDescriptor } from "./tensors.ts";
import type { ReplayGuard } from "./replay.ts";
import type { OutgoingFrame } from "../transport/transport.ts";

/** Message header (docs/protocol.md, Envelope). */
export interface Header {
  msg_id: string;
  msg_type: string;
  session: string;
  date: string;
  parent_id: string | null;
  version: string;
  buffers: BufferDescriptor[];
  signed_buffers: boolean;
  [extra: string]: unknown;
}

/** A message in its logical parts; `content` holds `{"$tensor": i}` placeholders. */
export interface WireMessage {
  header: Header;
  content: Record<string, unknown>;
  buffers: Uint8Array[];
  /**
   * Set by {@link decodeMessage}: an upper bound of the content's nesting (its count of
   * `{` and `[`), present only when its text cannot hold a `"$tensor"` key (no `$tensor`,
   * no `\u` escape that could spell one). Such content needs no tensor walk when it is
   * shallow enough.
   */
  plainDepth?: number;
}

/** Why a received message was dropped without an answer. */
export type DropReason = "malformed" | "oversized" | "bad_signature" | "replayed";

/** Counters of dropped messages per reason. */
export type DropCounts = Record<DropReason, number>;

/** A fresh {@link DropCounts}. */
export function emptyDropCounts(): DropCounts {
  return { malformed: 0, oversized: 0, bad_signature: 0, replayed: 0 };
}

// Random bytes for ids, drawn 4 KiB at a time: one call into OpenSSL per 256 ids instead
// of one per id.
const idPool = Buffer.allocUnsafe(4096);
let idAt = idPool.byteLength;

/** A new random message or session id: 32 lowercase hex digits. */
export function newId(): string {
  if (idAt === idPool.byteLength) {
    randomFillSync(idPool);
    idAt = 0;
  }
  idAt += 16;
  return idPool.toString("hex", idAt - 16, idAt);
}

let clockSecond = Number.NaN;
let clockPrefix = "";

/**
 * `new Date(ms).toISOString()`, formatting the date and second once per second (messages
 * sent in the same second share them).
 */
export function isoDate(ms: number = Date.now()): string {
  const second = Math.floor(ms / 1000);
  if (second !== clockSecond) {
    clockPrefix = new Date(second * 1000).toISOString().slice(0, -4); // "...T13:05:38."
    clockSecond = second;
  }
  const millis = ms - second * 1000;
  return `${clockPrefix}${millis < 10 ? "00" : millis < 100 ? "0" : ""}${millis}Z`;
}

const TAG = Buffer.from(PROTOCOL_TAG, "ascii");
const ZERO = new Uint8Array(0);

// Frames up to this size are copied into one HMAC update (one call into OpenSSL instead of
// two per frame); larger ones are fed as they are, with no copy.
const JOIN_MAX = 64 * 1024;

/** Bytes of a frame on the wire (a text frame travels as UTF-8). */
export function frameBytes(f: OutgoingFrame): number {
  return typeof f === "string" ? Buffer.byteLength(f, "utf8") : f.byteLength;
}

/**
 * HMAC-SHA256 of the covered frames, each fed as an 8-byte big-endian length then its bytes
 * (a text frame: its UTF-8 bytes).
 * @returns 64 lowercase hex digits
 */
export function sign(key: Uint8Array, frames: readonly OutgoingFrame[]): string {
  const sizes: number[] = [];
  let joined = 0; // bytes of the length prefixes and short frames
  let long = false;
  for (const f of frames) {
    const n = frameBytes(f);
    sizes.push(n);
    if (n <= JOIN_MAX) joined += 8 + n;
    else {
      joined += 8;
      long = true;
    }
  }
  const pads = oneShot && !long ? keyPads(key) : undefined;
  // With the pads, the inner hash's input is the key block then the message: room for it.
  const lead = pads ? BLOCK : 0;
  const small = Buffer.allocUnsafe(lead + joined);
  let at = lead;
  const h = pads ? undefined : createHmac("sha256", key);
  for (let i = 0; i < frames.length; i++) {
    const f = frames[i] as OutgoingFrame;
    const n = sizes[i] as number;
    // Lengths fit in 53 bits: write the high and low 32-bit halves (no BigInt).
    small.writeUInt32BE(Math.floor(n / 0x1_0000_0000), at);
    small.writeUInt32BE(n >>> 0, at + 4);
    at += 8;
    if (n <= JOIN_MAX) {
      if (typeof f === "string") small.write(f, at, "utf8");
      else small.set(f, at);
      at += n;
    } else if (h) {
      h.update(small.subarray(0, at));
      if (typeof f === "string") h.update(f, "utf8");
      else h.update(f);
      at = 0; // what follows fits: `small` can hold all the short parts at once
    }
  }
  if (pads && oneShot) {
    // HMAC by its definition, H((K ^ opad) || H((K ^ ipad) || m)), in two one-shot hashes:
    // cheaper than a Hmac object (a stream-like JS object built per message).
    pads.inner.copy(small, 0);
    pads.outer.set(oneShot("sha256", small, "buffer") as Buffer, BLOCK);
    return oneShot("sha256", pads.outer, "hex") as string;
  }
  const mac = h as crypto.Hmac;
  if (at > 0) mac.update(small.subarray(0, at));
  return mac.digest("hex");
}

/** SHA-256's block size: a key of 32 bytes is zero-padded to it. */
const BLOCK = 64;
/** `crypto.hash` (Node 20.12 and later), one call per digest; undefined before. */
const oneShot = (crypto as { hash?: (algorithm: string, data: Uint8Array, encoding: "hex" | "buffer") => string | Buffer }).hash;
/** Per key: K ^ ipad (a block), and K ^ opad followed by room for the inner digest. */
const pads = new WeakMap<Uint8Array, { inner: Buffer; outer: Buffer }>();

function keyPads(key: Uint8Array): { inner: Buffer; outer: Buffer } | undefined {
  if (key.byteLength > BLOCK) return undefined; // HMAC hashes such keys first: not done here
  let p = pads.get(key);
  if (!p) {
    const inner = Buffer.alloc(BLOCK, 0x36);
    const outer = Buffer.alloc(BLOCK + 32, 0x5c);
    for (let i = 0; i < key.byteLength; i++) {
      inner[i] = (inner[i] as number) ^ (key[i] as number);
      outer[i] = (outer[i] as number) ^ (key[i] as number);
    }
    p = { inner, outer };
    pads.set(key, p);
  }
  return p;
}

function covered<F extends OutgoingFrame>(frames: readonly F[], signedBuffers: boolean): OutgoingFrame[] {
  const head = [frames[0] ?? ZERO, frames[2] ?? ZERO, frames[3] ?? ZERO];
  return signedBuffers ? [...head, ...frames.slice(4)] : head;
}

/** Options of {@link makeHeader}. */
export interface HeaderInit {
  msgType: string;
  session: string;
  parentId?: string | null;
  buffers?: BufferDescriptor[];
  signedBuffers: boolean;
  msgId?: string;
  date?: Date;
}

/** Builds a header with a fresh `msg_id` and the current date. */
export function makeHeader(init: HeaderInit): Header {
  return {
    msg_id: init.msgId ?? newId(),
    msg_type: init.msgType,
    session: init.session,
    date: init.date ? init.date.toISOString() : isoDate(),
    parent_id: init.parentId ?? null,
    version: PROTOCOL_VERSION,
    buffers: init.buffers ?? [],
    signed_buffers: init.signedBuffers,
  };
}

/** Length of frame 1, the signature (64 hex digits). */
export const SIGNATURE_BYTES = 64;

/**
 * Serialises a message into its wire frames with an empty signature frame: its size
 * ({@link messageBytes} plus {@link SIGNATURE_BYTES}) is known before anything is hashed.
 * Header and content are JSON text (see {@link OutgoingFrame}); buffers stay as they are.
 */
export function frameMessage(msg: WireMessage): OutgoingFrame[] {
  return [TAG, "", JSON.stringify(msg.header), JSON.stringify(msg.content), ...msg.buffers];
}

/** Fills in the signature frame of {@link frameMessage}'s frames; returns them. */
export function signFrames(frames: OutgoingFrame[], key: Uint8Array, signedBuffers: boolean): OutgoingFrame[] {
  frames[1] = sign(key, covered(frames, signedBuffers));
  return frames;
}

/** Serialises and signs a message into its wire frames (tag, signature, header, content, buffers...), as bytes. */
export function encodeMessage(msg: WireMessage, key: Uint8Array): Uint8Array[] {
  return signFrames(frameMessage(msg), key, msg.header.signed_buffers).map((f) => (typeof f === "string" ? Buffer.from(f, "utf8") : f));
}

/**
 * ZeroMQ's own per-frame limit (ZMQ_MAXMSGSIZE) that goes with a message limit: the limit
 * plus 64 KiB of headroom, so that a message a little over the limit still arrives and is
 * counted as oversized, while a frame far over it makes ZeroMQ close the connection before
 * anything is allocated for it (docs/protocol.md, Wire framing).
 */
export function socketFrameLimit(maxMessageBytes: number): number {
  return Math.min(maxMessageBytes + FRAME_HEADROOM, Number.MAX_SAFE_INTEGER);
}
const FRAME_HEADROOM = 64 * 1024;

/** Size of a message as a receiver's limit counts it: all its frames together. */
export function messageBytes(frames: readonly OutgoingFrame[]): number {
  let total = 0;
  for (const f of frames) total += frameBytes(f);
  return total;
}

/** What a receiver checks against (docs/protocol.md, Wire framing). */
export interface VerifyOptions {
  key: Uint8Array;
  /**
   * Whether this connection signs buffer frames (its `signed_buffers`, fixed per runtime).
   * It alone decides what the signature covers: the header is not read before the
   * signature matched.
   */
  signedBuffers: boolean;
  /** Largest accepted message, all frames together, in bytes. */
  maxMessageBytes: number;
  /** Replay guard; omit to skip the replay check (tests of the codec). */
  replay?: ReplayGuard;
}

/** Outcome of {@link decodeMessage}. */
export type DecodeResult = { ok: true; message: WireMessage } | { ok: false; reason: DropReason };

function frameText(frame: Uint8Array): string {
  const b = Buffer.isBuffer(frame) ? frame : Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  return b.toString("utf8");
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;

/** See {@link WireMessage.plainDepth}. */
function plainDepth(text: string): number | undefined {
  if (text.includes("$tensor") || text.includes("\\u")) return undefined;
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++;
  }
  return depth;
}

function isHeader(h: Record<string, unknown>): h is Header {
  return (
    typeof h.msg_id === "string" &&
    typeof h.msg_type === "string" &&
    typeof h.session === "string" &&
    typeof h.date === "string" &&
    (h.parent_id === null || typeof h.parent_id === "string") &&
    typeof h.version === "string" &&
    Array.isArray(h.buffers) &&
    typeof h.signed_buffers === "boolean"
  );
}

/**
 * Authenticates and parses received frames, in the order docs/protocol.md gives: frame
 * count and tag, size, signature (constant time, over the raw frames: nothing is parsed
 * before it matched), JSON and header fields, replay. Buffer descriptors are checked later,
 * by the tensor codec (an authenticated message with bad tensors is answered, not dropped).
 */
export function decodeMessage(frames: readonly Uint8Array[], opts: VerifyOptions): DecodeResult {
  if (frames.length < 4 || !TAG.equals(frames[0] as Uint8Array)) return { ok: false, reason: "malformed" };
  if (messageBytes(frames) > opts.maxMessageBytes) return { ok: false, reason: "oversized" };
  const sig = frames[1] as Uint8Array;
  const want = Buffer.from(sign(opts.key, covered(frames, opts.signedBuffers)), "ascii");
  if (sig.byteLength !== want.byteLength || !timingSafeEqual(want, sig)) return { ok: false, reason: "bad_signature" };
  const header = parseObject(frameText(frames[2] as Uint8Array));
  if (!header || !isHeader(header)) return { ok: false, reason: "malformed" };
  const when = Date.parse(header.date);
  if (!Number.isFinite(when)) return { ok: false, reason: "malformed" };
  const text = frameText(frames[3] as Uint8Array);
  const content = parseObject(text);
  if (!content) return { ok: false, reason: "malformed" };
  if (opts.replay && !opts.replay.accept(header.msg_id, header.date, when)) return { ok: false, reason: "replayed" };
  const message: WireMessage = { header, content, buffers: frames.length > 4 ? (frames.slice(4) as Uint8Array[]) : [] };
  const depth = plainDepth(text);
  if (depth !== undefined) message.plainDepth = depth;
  return { ok: true, message };
}
