/**
 * The client side of RFC 6455 as pure functions over bytes, for the raw test
 * socket and the benchmark clients: the upgrade request and the server's
 * answer, masked client frames out, server frames in. It knows
 * nothing about what the frames mean.
 *
 * @module
 */

/** Opcodes of RFC 6455. */
export const Opcode = { text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;

const encoder = new TextEncoder();

/** The HTTP upgrade request for `ws://127.0.0.1:PORT/`, with extra header lines. */
export function upgradeRequest(
  port: number,
  key: string,
  headers: Record<string, string> = {},
): Uint8Array {
  const extra = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join("");
  return encoder.encode(
    `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\n` +
      `Sec-WebSocket-Version: 13\r\n${extra}\r\n`,
  );
}

/** The server's answer to the upgrade request. */
export interface UpgradeResponse {
  /** E.g. `HTTP/1.1 101 Switching Protocols`. */
  readonly statusLine: string;
  readonly status: number;
  /** Where the frames start, after the HTTP head. */
  readonly end: number;
}

/** The answer at the start of `bytes`, once they hold all of its HTTP head. */
export function upgradeResponse(bytes: Uint8Array): UpgradeResponse | undefined {
  for (let at = 0; at + 3 < bytes.length; at++) {
    if (
      bytes[at] === 0x0d && bytes[at + 1] === 0x0a && bytes[at + 2] === 0x0d &&
      bytes[at + 3] === 0x0a
    ) {
      const head = new TextDecoder().decode(bytes.subarray(0, Math.min(at, 80)));
      const statusLine = head.split("\r\n")[0];
      return { statusLine, status: Number(statusLine.split(" ")[1]), end: at + 4 };
    }
  }
  return undefined;
}

/** A masked client frame (RFC 6455 5.3: clients must mask); a string payload is sent as UTF-8. */
export function clientFrame(opcode: number, payload: Uint8Array | string): Uint8Array {
  const bytes = typeof payload === "string" ? encoder.encode(payload) : payload;
  const length = bytes.byteLength;
  const header = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const frame = new Uint8Array(header + 4 + length);
  frame[0] = 0x80 | opcode;
  if (header === 2) frame[1] = 0x80 | length;
  else if (header === 4) {
    frame[1] = 0x80 | 126;
    frame[2] = length >> 8;
    frame[3] = length & 0xff;
  } else {
    frame[1] = 0x80 | 127;
    new DataView(frame.buffer).setUint32(6, length);
  }
  const mask = crypto.getRandomValues(new Uint8Array(4));
  frame.set(mask, header);
  const offset = header + 4;
  for (let i = 0; i < length; i++) frame[offset + i] = bytes[i] ^ mask[i & 3];
  return frame;
}

/** A server frame's place in a buffer: its opcode and where its payload lies. */
export interface FrameAt {
  readonly opcode: number;
  /** The payload is `bytes[start, end)`; the next frame starts at `end`. */
  readonly start: number;
  readonly end: number;
}

/**
 * The (unmasked, server-sent) frame starting at `offset` in `bytes`, or
 * `undefined` while the buffer does not hold all of it yet.
 */
export function frameAt(bytes: Uint8Array, offset: number): FrameAt | undefined {
  const size = bytes.length;
  if (offset + 2 > size) return undefined;
  let length = bytes[offset + 1] & 0x7f;
  let header = 2;
  if (length === 126) {
    if (offset + 4 > size) return undefined;
    length = (bytes[offset + 2] << 8) | bytes[offset + 3];
    header = 4;
  } else if (length === 127) {
    if (offset + 10 > size) return undefined;
    const view = new DataView(bytes.buffer, bytes.byteOffset + offset + 2, 8);
    length = view.getUint32(0) * 2 ** 32 + view.getUint32(4);
    header = 10;
  }
  const start = offset + header;
  const end = start + length;
  if (end > size) return undefined;
  return { opcode: bytes[offset] & 0x0f, start, end };
}

/** `first` and `second` in one new array. */
export function concat(first: Uint8Array, second: Uint8Array): Uint8Array {
  const joined = new Uint8Array(first.length + second.length);
  joined.set(first);
  joined.set(second, first.length);
  return joined;
}
