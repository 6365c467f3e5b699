/**
 * A bare-bones WebSocket client on a TCP socket, for what a well-behaved
 * client never does: ignore pings, stop reading, send raw frames.
 *
 * @module
 */

/** One frame read from the server. */
export interface Frame {
  readonly opcode: number;
  readonly payload: Uint8Array;
}

/** Opcodes of RFC 6455. */
export const Opcode = { text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;

/** A raw WebSocket connection. */
export class RawSocket {
  readonly conn: Deno.TcpConn;
  readonly status: number;
  #buffer: Uint8Array = new Uint8Array(0);

  private constructor(conn: Deno.TcpConn, status: number, rest: Uint8Array) {
    this.conn = conn;
    this.status = status;
    this.#buffer = rest;
  }

  /** Connects and performs the HTTP upgrade; `status` is the HTTP status of the answer. */
  static async connect(port: number, headers: Record<string, string> = {}): Promise<RawSocket> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const extra = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join("");
    await conn.write(new TextEncoder().encode(
      `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${
          btoa("0123456789abcdef")
        }\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
    ));
    let received: Uint8Array = new Uint8Array(0);
    for (;;) {
      const chunk = new Uint8Array(4096);
      const n = await conn.read(chunk);
      if (n === null) throw new Error("connection closed during the handshake");
      received = concat(received, chunk.subarray(0, n));
      const text = new TextDecoder().decode(received);
      const end = text.indexOf("\r\n\r\n");
      if (end >= 0) {
        const status = Number(text.split(" ")[1]);
        const headerBytes = new TextEncoder().encode(text.slice(0, end + 4)).byteLength;
        return new RawSocket(conn, status, received.subarray(headerBytes));
      }
    }
  }

  /** Sends one frame, masked as a client must. */
  async send(opcode: number, payload: Uint8Array | string): Promise<void> {
    const bytes = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
    const length = bytes.byteLength;
    const header = length < 126
      ? [0x80 | opcode, 0x80 | length]
      : length < 65536
      ? [0x80 | opcode, 0x80 | 126, length >> 8, length & 0xff]
      : [
        0x80 | opcode,
        0x80 | 127,
        0,
        0,
        0,
        0,
        ...[24, 16, 8, 0].map((s) => (length >>> s) & 0xff),
      ];
    const mask = crypto.getRandomValues(new Uint8Array(4));
    const masked = bytes.map((byte, i) => byte ^ mask[i % 4]);
    await this.conn.write(concat(new Uint8Array([...header, ...mask]), masked));
  }

  /** Reads the next frame, or `null` at end of stream; rejects after `timeoutMs`. */
  async next(timeoutMs = 3000): Promise<Frame | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const frame = this.#parse();
      if (frame) return frame;
      if (Date.now() > deadline) throw new Error(`no frame within ${timeoutMs} ms`);
      const chunk = new Uint8Array(65536);
      const timer = setTimeout(() => this.conn.close(), deadline - Date.now());
      let n: number | null;
      try {
        n = await this.conn.read(chunk);
      } catch {
        throw new Error(`no frame within ${timeoutMs} ms`);
      } finally {
        clearTimeout(timer);
      }
      if (n === null) return null;
      this.#buffer = concat(this.#buffer, chunk.subarray(0, n));
    }
  }

  /** Reads frames until a close frame (its code) or the end of the stream (`null`). */
  async closeCode(timeoutMs = 3000): Promise<number | null> {
    for (;;) {
      const frame = await this.next(timeoutMs);
      if (!frame) return null;
      if (frame.opcode === Opcode.close) return (frame.payload[0] << 8) | frame.payload[1];
    }
  }

  close(): void {
    try {
      this.conn.close();
    } catch {
      // Already closed by a timeout.
    }
  }

  #parse(): Frame | undefined {
    const buffer = this.#buffer;
    if (buffer.length < 2) return undefined;
    let length = buffer[1] & 0x7f;
    let offset = 2;
    if (length === 126) {
      if (buffer.length < 4) return undefined;
      length = (buffer[2] << 8) | buffer[3];
      offset = 4;
    } else if (length === 127) {
      if (buffer.length < 10) return undefined;
      length = Number(new DataView(buffer.buffer, buffer.byteOffset + 2, 8).getBigUint64(0));
      offset = 10;
    }
    if (buffer.length < offset + length) return undefined;
    const frame = { opcode: buffer[0] & 0x0f, payload: buffer.slice(offset, offset + length) };
    this.#buffer = buffer.slice(offset + length);
    return frame;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const all = new Uint8Array(a.byteLength + b.byteLength);
  all.set(a);
  all.set(b, a.byteLength);
  return all;
}
