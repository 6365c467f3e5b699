/**
 * The start-up self-check that chooses the writer of Shark's own transport
 * (`chunk_writer.ts`): the native handle's writer is used only where it
 * behaves, on a real loopback socket pair of this runtime, as that module
 * assumes. Otherwise `socket.write`, which is slower per write but relies
 * on nothing private.
 *
 * The checks: a small write is taken by the kernel at once, without a
 * callback; a write larger than the kernel's buffers, to a peer that is
 * not reading, waits, is counted in `buffered`, and completes exactly once
 * after the peer reads; the peer receives exactly the bytes written; and
 * no completion arrives that was not waited for.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import net from "node:net";
import {
  type ChunkWriter,
  HandleWriter,
  nativeHandle,
  streamWrap,
  WriteRequests,
  type WriterKind,
} from "./chunk_writer.ts";

/** What the self-check decided, and why. */
export interface WriterChoice {
  readonly kind: WriterKind;
  /** One line: the check that failed, or that all passed. */
  readonly why: string;
}

/**
 * Writes of this size are made until one waits (the kernel's buffers are
 * full), at most {@link MAX_PIECES} of them.
 */
const PIECE_BYTES = 4 * 1024 * 1024;
const MAX_PIECES = 16;
/** How long the whole check may take. */
const CHECK_TIMEOUT_MS = 5000;

/**
 * Runs the self-check on a loopback socket pair. Never throws: any failure
 * chooses the stream writer, with the reason.
 */
export async function chooseWriter(): Promise<WriterChoice> {
  const binding = streamWrap();
  if (!binding) return { kind: "stream", why: "the runtime has no stream_wrap binding" };
  const listener = net.createServer();
  const sockets: net.Socket[] = [];
  try {
    const accepted = new Promise<net.Socket>((resolve) => listener.once("connection", resolve));
    await new Promise<void>((resolve, reject) => {
      listener.once("error", reject);
      listener.listen(0, "127.0.0.1", resolve);
    });
    const client = net.connect((listener.address() as net.AddressInfo).port, "127.0.0.1");
    sockets.push(client);
    client.on("error", () => {});
    const server = await accepted;
    sockets.push(server);
    server.on("error", () => {});
    const handle = nativeHandle(server);
    if (!handle) return { kind: "stream", why: "node:net sockets have no native writeBuffer" };
    const requests = new WriteRequests(binding);
    const why = await checkWriter(new HandleWriter(server, handle, requests), requests, client);
    return why === undefined
      ? { kind: "handle", why: "self-check passed" }
      : { kind: "stream", why };
  } catch (error) {
    return { kind: "stream", why: `self-check failed: ${(error as Error).message}` };
  } finally {
    for (const socket of sockets) socket.destroy();
    listener.close();
  }
}

/**
 * The check's bytes repeat every `PERIOD` (a prime, so that no power-of-two
 * chunking of the runtime lines up with it): the byte at stream offset `n`
 * is `n % PERIOD`, so any received chunk is compared, natively, with a view
 * of {@link REFERENCE}.
 */
const PERIOD = 251;
const REFERENCE = Buffer.from(Array.from({ length: 256 * PERIOD }, (_, i) => i % PERIOD));

/** `length` bytes of the check's stream from offset `offset`. */
function pattern(length: number, offset: number): Uint8Array {
  const bytes = new Uint8Array(length);
  const block = REFERENCE.subarray(offset % PERIOD, offset % PERIOD + 255 * PERIOD);
  for (let at = 0; at < length; at += block.byteLength) {
    bytes.set(block.subarray(0, Math.min(block.byteLength, length - at)), at);
  }
  return bytes;
}

/** Whether `chunk`, received at stream offset `offset`, holds the check's bytes. */
function intact(chunk: Uint8Array, offset: number): boolean {
  const step = 255 * PERIOD;
  for (let at = 0; at < chunk.byteLength; at += step) {
    const part = chunk.subarray(at, Math.min(chunk.byteLength, at + step));
    const start = (offset + at) % PERIOD;
    if (Buffer.compare(part, REFERENCE.subarray(start, start + part.byteLength)) !== 0) {
      return false;
    }
  }
  return true;
}

/**
 * Runs the checks of `writer` (writing to `peer`, which it pauses and then
 * reads); resolves with the first that failed, `undefined` when all passed.
 */
export async function checkWriter(
  writer: ChunkWriter,
  requests: WriteRequests,
  peer: net.Socket,
): Promise<string | undefined> {
  peer.pause();
  // The first write of a connection may wait on the runtime's own set-up of
  // the socket: once it is done, writes the kernel can take are taken at once.
  const first = pattern(1, 0);
  const settled = Promise.withResolvers<void>();
  if (writer.write(first, settled.resolve)) settled.resolve();
  await settled.promise;
  const small = pattern(16, first.byteLength);
  let smallDone = 0;
  if (!writer.write(small, () => smallDone++)) return "a small write was not taken at once";
  let sent = first.byteLength + small.byteLength;
  let largeDone = 0;
  let waiting: Uint8Array | undefined;
  for (let piece = 0; piece < MAX_PIECES && !waiting; piece++) {
    const large = pattern(PIECE_BYTES, sent);
    sent += large.byteLength;
    if (!writer.write(large, () => largeDone++)) waiting = large;
  }
  if (!waiting) return `no write waited, ${MAX_PIECES} writes of ${PIECE_BYTES} bytes`;
  if (largeDone > 0) return "a write that waits called back from inside write()";
  if (writer.buffered !== waiting.byteLength) {
    return `buffered ${writer.buffered}, not ${waiting.byteLength}`;
  }
  const total = sent;
  let received = 0;
  let corrupt = false;
  peer.on("data", (chunk: Uint8Array) => {
    if (!intact(chunk, received)) corrupt = true;
    received += chunk.byteLength;
  });
  peer.resume();
  const deadline = performance.now() + CHECK_TIMEOUT_MS;
  while (received < total || largeDone === 0) {
    if (performance.now() > deadline) return `no completion within ${CHECK_TIMEOUT_MS} ms`;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  // A second completion, if the runtime sends one, comes within a few turns.
  await new Promise((resolve) => setTimeout(resolve, 20));
  if (corrupt) return "the peer received other bytes than were written";
  if (received !== total) return `the peer received ${received} bytes, not ${total}`;
  if (smallDone !== 0) return "a write taken at once was called back";
  if (largeDone !== 1) return `a write that waited completed ${largeDone} times`;
  if (writer.buffered !== 0) return `buffered ${writer.buffered} after the write completed`;
  if (requests.unexpected > 0) return "a completion arrived that was not waited for";
  return undefined;
}
