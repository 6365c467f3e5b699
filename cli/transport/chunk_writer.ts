/**
 * How a connection of Shark's own transport hands its joined output to its
 * socket (SPEC section 9, "Transports"): straight to the `node:net`
 * socket's native handle where the runtime has one, else through the
 * socket's `write`.
 *
 * Why not always `socket.write`: on the paths where each connection gets
 * one frame per turn (paced fan-out, a subscriber per topic) every delivery
 * is a write, and `socket.write` wraps each one in the `Writable` stream's
 * bookkeeping: a `Buffer` view of the bytes, the write request, a
 * completion callback from the runtime and a `process.nextTick` to call it.
 * The handle's `writeBuffer` says at once whether the kernel took the whole
 * chunk, and calls back only when it did not. Measured in the server
 * (`deno task bench topics fanout`, alternating, same machine): see
 * `bench/RESULTS.md`.
 *
 * The handle is the runtime's `node:net` internals (`socket._handle`,
 * `process.binding("stream_wrap")`), the same objects Node.js has: both are
 * looked for, and a socket without them (a `node:tls` socket, another
 * runtime, a test's fake) is written through `write`.
 *
 * @module
 */
import type { Socket } from "node:net";
import process from "node:process";

/** How a connection writes: one chunk at a time, the next once the kernel took this one. */
export interface ChunkWriter {
  /**
   * Writes `chunk`. Returns true when the kernel took all of it at once
   * (then `done` is not called); else `done` is called once it has. A
   * failed write destroys the socket, whose `close` event follows.
   */
  write(chunk: Uint8Array, done: () => void): boolean;
  /** Bytes written and not yet taken by the kernel. */
  readonly buffered: number;
}

/** A write request as the runtime's stream handle takes it. */
interface WriteRequest {
  handle: NativeHandle;
  oncomplete: (this: WriteRequest, status: number) => void;
  /** This module's: the writer and the bytes of the write, for its completion. */
  writer?: HandleWriter;
  bytes: number;
  done: () => void;
}

/** What is used of `socket._handle`. */
interface NativeHandle {
  /** Returns 0 or a negative error code; the state's "last write was async" says whether it waits. */
  writeBuffer(request: WriteRequest, data: Uint8Array): number;
}

/** What is used of `process.binding("stream_wrap")`. */
interface StreamWrapBinding {
  readonly WriteWrap: new () => WriteRequest;
  readonly streamBaseState: Int32Array;
  readonly kLastWriteWasAsync: number;
}

const binding = streamWrap();

function streamWrap(): StreamWrapBinding | undefined {
  try {
    const found = (process as unknown as { binding(name: string): Partial<StreamWrapBinding> })
      .binding("stream_wrap");
    const { WriteWrap, streamBaseState, kLastWriteWasAsync } = found;
    if (
      typeof WriteWrap !== "function" || !(streamBaseState instanceof Int32Array) ||
      typeof kLastWriteWasAsync !== "number"
    ) return undefined;
    return { WriteWrap, streamBaseState, kLastWriteWasAsync };
  } catch {
    return undefined;
  }
}

/** Called by the runtime, `this` being the request, when a write that waited is done. */
function completed(this: WriteRequest, status: number): void {
  const writer = this.writer;
  // Only a write that waited is called back; anything else is not this module's to answer.
  if (writer === undefined) return;
  writer.buffered -= this.bytes;
  if (status < 0) writer.socket.destroy();
  else this.done();
}

/**
 * A write request the runtime let go of: one whose write the kernel took at
 * once is not kept (only a write that waits is), so the next write reuses it.
 */
let spare: WriteRequest | undefined;

class HandleWriter implements ChunkWriter {
  buffered = 0;
  readonly socket: Socket;
  readonly #handle: NativeHandle;
  readonly #binding: StreamWrapBinding;

  constructor(socket: Socket, handle: NativeHandle, streamWrap: StreamWrapBinding) {
    this.socket = socket;
    this.#handle = handle;
    this.#binding = streamWrap;
  }

  write(chunk: Uint8Array, done: () => void): boolean {
    const request = spare ?? new this.#binding.WriteWrap();
    spare = undefined;
    request.handle = this.#handle;
    request.oncomplete = completed;
    let status: number;
    try {
      status = this.#handle.writeBuffer(request, chunk);
    } catch {
      // The handle is closed: the socket's `close` event is on its way.
      status = -1;
    }
    if (status < 0) {
      this.socket.destroy();
      return true;
    }
    if (this.#binding.streamBaseState[this.#binding.kLastWriteWasAsync] === 0) {
      spare = request;
      return true;
    }
    request.writer = this;
    request.bytes = chunk.byteLength;
    request.done = done;
    this.buffered += chunk.byteLength;
    return false;
  }
}

class StreamWriter implements ChunkWriter {
  readonly #socket: Pick<Socket, "write" | "writableLength">;

  constructor(socket: Pick<Socket, "write" | "writableLength">) {
    this.#socket = socket;
  }

  get buffered(): number {
    return this.#socket.writableLength;
  }

  write(chunk: Uint8Array, done: () => void): boolean {
    this.#socket.write(chunk, done);
    return false;
  }
}

/**
 * The writer for `socket`: its native handle's when it has one that this
 * module knows (a plain TCP socket of `node:net`), else its `write`.
 */
export function chunkWriter(socket: Pick<Socket, "write" | "writableLength">): ChunkWriter {
  const handle = (socket as { _handle?: Partial<NativeHandle> | null })._handle;
  const encrypted = (socket as { encrypted?: boolean }).encrypted === true;
  if (binding && !encrypted && typeof handle?.writeBuffer === "function") {
    return new HandleWriter(socket as Socket, handle as NativeHandle, binding);
  }
  return new StreamWriter(socket);
}

/** Whether this runtime's `node:net` sockets are written through their native handle. */
export const writesThroughHandle: boolean = binding !== undefined;
