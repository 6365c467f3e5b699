/**
 * A bare-bones WebSocket client on a TCP socket, for what a well-behaved
 * client never does: ignore pings, stop reading, send raw frames.
 *
 * @module
 */
import * as frames from "./ws_frame.ts";

export { Opcode } from "./ws_frame.ts";

/** One frame read from the server. */
export interface Frame {
  readonly opcode: number;
  readonly payload: Uint8Array;
}

/** A raw WebSocket connection; disposing of it closes it. */
export class RawSocket {
  readonly conn: Deno.TcpConn;
  readonly status: number;
  #buffer: Uint8Array;

  private constructor(conn: Deno.TcpConn, status: number, rest: Uint8Array) {
    this.conn = conn;
    this.status = status;
    this.#buffer = rest;
  }

  /** Connects and performs the HTTP upgrade; `status` is the HTTP status of the answer. */
  static async connect(port: number, headers: Record<string, string> = {}): Promise<RawSocket> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(frames.upgradeRequest(port, btoa("0123456789abcdef"), headers));
    let received: Uint8Array = new Uint8Array(0);
    for (;;) {
      const chunk = new Uint8Array(4096);
      const n = await conn.read(chunk);
      if (n === null) throw new Error("connection closed during the handshake");
      received = frames.concat(received, chunk.subarray(0, n));
      const answer = frames.upgradeResponse(received);
      if (answer) return new RawSocket(conn, answer.status, received.subarray(answer.end));
    }
  }

  /** Sends one frame, masked as a client must. */
  async send(opcode: number, payload: Uint8Array | string): Promise<void> {
    await this.conn.write(frames.clientFrame(opcode, payload));
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
      this.#buffer = frames.concat(this.#buffer, chunk.subarray(0, n));
    }
  }

  /** Reads frames until a close frame (its code) or the end of the stream (`null`). */
  async closeCode(timeoutMs = 3000): Promise<number | null> {
    for (;;) {
      const frame = await this.next(timeoutMs);
      if (!frame) return null;
      if (frame.opcode === frames.Opcode.close) return (frame.payload[0] << 8) | frame.payload[1];
    }
  }

  close(): void {
    try {
      this.conn.close();
    } catch {
      // Already closed by a timeout.
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #parse(): Frame | undefined {
    const at = frames.frameAt(this.#buffer, 0);
    if (!at) return undefined;
    const frame = { opcode: at.opcode, payload: this.#buffer.slice(at.start, at.end) };
    this.#buffer = this.#buffer.slice(at.end);
    return frame;
  }
}
