/**
 * RFC 6455 frames as bytes (SPEC section 9, "Transports"): the opcodes and
 * close codes, and builders of the frames a server sends (the reader is in
 * `frame_reader.ts`). Pure functions over `Uint8Array`s: no I/O, no timers,
 * nothing about what the messages mean.
 *
 * @module
 */

/** Frame opcodes (RFC 6455 section 5.2). */
export const Opcode = {
  continuation: 0x0,
  text: 0x1,
  binary: 0x2,
  close: 0x8,
  ping: 0x9,
  pong: 0xa,
} as const;

/** Close codes this layer sends or reports (RFC 6455 section 7.4.1). */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  protocolError: 1002,
  /** Reported, never sent: the close frame carried no code. */
  noStatus: 1005,
  /** Reported, never sent: the connection ended without a close frame. */
  abnormal: 1006,
  invalidData: 1007,
  tooBig: 1009,
} as const;

/** The largest payload of a control frame. */
export const MAX_CONTROL_PAYLOAD = 125;

/** The longest close reason: a control payload less the two bytes of the code. */
export const MAX_CLOSE_REASON_BYTES = MAX_CONTROL_PAYLOAD - 2;

/**
 * Whether `code` may travel in a close frame: 1000–1003, 1007–1014 (the
 * IANA registry: 1012–1014 are service restart, try again later, bad
 * gateway) and the application range 3000–4999.
 */
export function isValidCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
    (code >= 3000 && code <= 4999);
}

/** XORs `bytes` with `mask`, starting at `offset` bytes into the payload. */
export function unmask(bytes: Uint8Array, mask: Uint8Array, offset: number): void {
  for (let i = 0; i < bytes.length; i++) bytes[i] ^= mask[(offset + i) & 3];
}

/** The header size of a frame carrying `length` payload bytes, unmasked. */
function serverHeaderSize(length: number): number {
  return length < 126 ? 2 : length < 65536 ? 4 : 10;
}

/** Writes an unmasked, final header at `target[0]`; `target` must have room for it. */
function writeHeader(target: Uint8Array, opcode: number, length: number, fin: boolean): void {
  target[0] = (fin ? 0x80 : 0) | opcode;
  if (length < 126) {
    target[1] = length;
  } else if (length < 65536) {
    target[1] = 126;
    target[2] = length >> 8;
    target[3] = length & 0xff;
  } else {
    target[1] = 127;
    const high = Math.floor(length / 2 ** 32);
    target[2] = high >>> 24;
    target[3] = (high >>> 16) & 0xff;
    target[4] = (high >>> 8) & 0xff;
    target[5] = high & 0xff;
    target[6] = length >>> 24;
    target[7] = (length >>> 16) & 0xff;
    target[8] = (length >>> 8) & 0xff;
    target[9] = length & 0xff;
  }
}

/** Options of {@link buildFrame}. */
export interface BuildOptions {
  /** Whether this is the last frame of its message (default `true`). */
  readonly fin?: boolean;
  /** A masking key (clients mask, servers never do). */
  readonly mask?: Uint8Array;
  /** Set raw RSV bits (0–7): only for tests of readers. */
  readonly rsv?: number;
}

/**
 * One frame: header and payload in one buffer (masked when a key is given).
 *
 * @example
 * ```ts
 * const pong = buildFrame(Opcode.pong, new Uint8Array(0));
 * ```
 */
export function buildFrame(
  opcode: number,
  payload: Uint8Array,
  options: BuildOptions = {},
): Uint8Array {
  const length = payload.byteLength;
  const header = serverHeaderSize(length);
  const mask = options.mask;
  const frame = new Uint8Array(header + (mask ? 4 : 0) + length);
  writeHeader(frame, opcode, length, options.fin ?? true);
  frame[0] |= (options.rsv ?? 0) << 4;
  if (mask) {
    frame[1] |= 0x80;
    frame.set(mask, header);
    const body = frame.subarray(header + 4);
    body.set(payload);
    unmask(body, mask, 0);
  } else {
    frame.set(payload, header);
  }
  return frame;
}

const encoder = new TextEncoder();

/** Frames up to this size are cut from a shared 4 KiB slab. */
export const SLAB_FRAME_MAX = 512;
const SLAB_BYTES = 4096;

/**
 * Bytes for small frames. A small frame is a view of a shared slab: one
 * allocation per slab, not per frame, where a subscriber per topic makes
 * every delivery a new frame (each `Uint8Array` of its own is a zeroed
 * allocation outside the JavaScript heap, freed only by the garbage
 * collector). A slab is never written again once cut: a frame that waits
 * keeps its slab alive, and outboxes join the frames waiting behind a write
 * (see `outbox.ts`).
 */
export class FrameSlab {
  #slab = new Uint8Array(SLAB_BYTES);
  #used = 0;

  /** `size` bytes for a frame. */
  bytes(size: number): Uint8Array {
    if (size > SLAB_FRAME_MAX) return new Uint8Array(size);
    if (this.#used + size > SLAB_BYTES) {
      this.#slab = new Uint8Array(SLAB_BYTES);
      this.#used = 0;
    }
    const bytes = this.#slab.subarray(this.#used, this.#used + size);
    this.#used += size;
    return bytes;
  }
}

/**
 * A server text frame, encoded once: a message fanned out to many
 * connections is one buffer that all of their output queues share. Small
 * frames are cut from `slab` when one is given.
 *
 * @example
 * ```ts
 * const frame = textFrame('{"event":"message","subscription":"books.1","data":1}');
 * ```
 */
export function textFrame(text: string, slab?: FrameSlab): Uint8Array {
  // Most frames are ASCII JSON: one exact allocation when the text has as many bytes as characters.
  const header = serverHeaderSize(text.length);
  const size = header + text.length;
  const frame = slab ? slab.bytes(size) : new Uint8Array(size);
  const { read, written } = encoder.encodeInto(text, frame.subarray(header));
  if (read === text.length && written === text.length) {
    writeHeader(frame, Opcode.text, written, true);
    return frame;
  }
  return buildFrame(Opcode.text, encoder.encode(text));
}

/** A server binary frame. */
export function binaryFrame(bytes: Uint8Array): Uint8Array {
  return buildFrame(Opcode.binary, bytes);
}

/**
 * A close frame with `code` and `reason` (cut to 123 bytes at a character
 * boundary); without a code, an empty close frame.
 */
export function closeFrame(code?: number, reason = ""): Uint8Array {
  if (code === undefined) return buildFrame(Opcode.close, new Uint8Array(0));
  const payload = new Uint8Array(2 + MAX_CLOSE_REASON_BYTES);
  payload[0] = code >> 8;
  payload[1] = code & 0xff;
  const { written } = encoder.encodeInto(reason, payload.subarray(2));
  return buildFrame(Opcode.close, payload.subarray(0, 2 + written));
}
