/**
 * Reading a request head off a socket of Shark's own transport (SPEC section
 * 9, "Transports"), within {@link MAX_HEAD_BYTES}, and leaving the socket
 * paused at the point where the head was complete.
 *
 * @module
 */
import type net from "node:net";
import { headEnd } from "./handshake.ts";

/** The largest request head (request line and header fields) accepted: Node's default. */
export const MAX_HEAD_BYTES = 16 * 1024;

/**
 * Reads until the end of the request head: `end` is its size (-1 when it
 * exceeds {@link MAX_HEAD_BYTES}); `received` is everything read so far. The
 * socket is paused when it returns: nothing after the head is lost.
 */
export function readHead(conn: net.Socket): Promise<{ received: Uint8Array; end: number }> {
  return new Promise((resolve, reject) => {
    let buffer = new Uint8Array(4096);
    let length = 0;
    const done = (error?: Error) => {
      conn.pause();
      conn.off("data", onData).off("end", onEnd).off("error", onEnd).off("close", onEnd);
      if (error) reject(error);
    };
    const onEnd = () => done(new Error("connection closed before its request head"));
    const onData = (chunk: Uint8Array) => {
      if (length + chunk.byteLength > buffer.byteLength) {
        const larger = new Uint8Array(Math.max(buffer.byteLength * 2, length + chunk.byteLength));
        larger.set(buffer.subarray(0, length));
        buffer = larger;
      }
      buffer.set(chunk, length);
      const end = headEnd(buffer.subarray(0, length + chunk.byteLength), length);
      length += chunk.byteLength;
      if (end >= 0 && end <= MAX_HEAD_BYTES) {
        done();
        resolve({ received: buffer.subarray(0, length), end });
      } else if (end >= 0 || length > MAX_HEAD_BYTES) {
        done();
        resolve({ received: buffer.subarray(0, length), end: -1 });
      }
    };
    conn.on("data", onData).on("end", onEnd).on("error", onEnd).on("close", onEnd);
  });
}
