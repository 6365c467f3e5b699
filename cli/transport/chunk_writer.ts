/**
 * How a connection of Shark's own transport hands its joined output to its
 * socket (SPEC section 9, "Transports"): straight to the `node:net`
 * socket's native handle where the runtime has one that passed the
 * start-up self-check (`writer_check.ts`), else through the socket's
 * `write`.
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
 * `process.binding("stream_wrap")`), the same objects Node.js has. What
 * this module relies on, and how each is held to:
 * - a write that waits keeps its bytes alive on its request
 *   (`request.buffer`, as Node.js does) until it completes, so that it is
 *   correct whether or not the runtime copies them;
 * - the runtime completes only a write that waited, once: any other
 *   completion is counted ({@link WriteRequests.unexpected}) and reported
 *   once, never answered;
 * - `done` is never called from inside `write` (the runtime calls back
 *   later); the outbox does not rely on it either (`outbox.ts`).
 *
 * @module
 */
import type { Socket } from "node:net";
import process from "node:process";

/** Which writer a transport uses: the native handle's, or `socket.write`. */
export type WriterKind = "handle" | "stream";

/** How a connection writes: one chunk at a time, the next once the kernel took this one. */
export interface ChunkWriter {
  /**
   * Writes `chunk`, which must not change until the write is done. Returns
   * true when the kernel took all of it at once (then `done` is not
   * called); else `done` is called once it has, never from inside `write`.
   * A failed write destroys the socket, whose `close` event follows.
   */
  write(chunk: Uint8Array, done: () => void): boolean;
  /** Bytes written and not yet taken by the kernel. */
  readonly buffered: number;
}

/** A write request as the runtime's stream handle takes it. */
export interface WriteRequest {
  handle: NativeHandle;
  oncomplete: (this: WriteRequest, status: number) => void;
  /** This module's: the pool the request belongs to. */
  pool?: WriteRequests;
  /** This module's: the writer of a write that waits, undefined otherwise. */
  writer?: HandleWriter;
  /** The bytes of a write that waits, kept alive until it completes. */
  buffer?: Uint8Array;
  bytes: number;
  done: () => void;
}

/** What is used of `socket._handle`. */
export interface NativeHandle {
  /** Returns 0 or a negative error code; the state's "last write was async" says whether it waits. */
  writeBuffer(request: WriteRequest, data: Uint8Array): number;
}

/** What is used of `process.binding("stream_wrap")`. */
export interface StreamWrapBinding {
  readonly WriteWrap: new () => WriteRequest;
  readonly streamBaseState: Int32Array;
  readonly kLastWriteWasAsync: number;
}

/** The runtime's `stream_wrap` binding, or `undefined` where it has none this module knows. */
export function streamWrap(): StreamWrapBinding | undefined {
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

/**
 * The write requests of one scheduler's handle writers: the spare one (a
 * request whose write the kernel took at once is not kept by the runtime,
 * so the next write reuses it) and the count of completions that broke the
 * rules above.
 */
export class WriteRequests {
  readonly binding: StreamWrapBinding;
  /** Completions for a request that was not waiting: the runtime no longer behaves as assumed. */
  unexpected = 0;
  spare: WriteRequest | undefined;
  readonly #onUnexpected: () => void;

  /** `onUnexpected` is told of the first unexpected completion only. */
  constructor(binding: StreamWrapBinding, onUnexpected: () => void = () => {}) {
    this.binding = binding;
    this.#onUnexpected = onUnexpected;
  }

  /** A new request of this pool. */
  create(): WriteRequest {
    const request = new this.binding.WriteWrap();
    request.pool = this;
    return request;
  }

  /** Counts a completion that was not this module's to answer. */
  stray(): void {
    if (this.unexpected++ === 0) this.#onUnexpected();
  }
}

/** Called by the runtime, `this` being the request, when a write that waited is done. */
function completed(this: WriteRequest, status: number): void {
  const writer = this.writer;
  if (writer === undefined) {
    this.pool?.stray();
    return;
  }
  this.writer = undefined;
  this.buffer = undefined;
  writer.buffered -= this.bytes;
  if (status < 0) writer.socket.destroy();
  else this.done();
}

/** Writes through the socket's native handle. */
export class HandleWriter implements ChunkWriter {
  buffered = 0;
  readonly socket: Pick<Socket, "destroy">;
  readonly #handle: NativeHandle;
  readonly #requests: WriteRequests;

  constructor(socket: Pick<Socket, "destroy">, handle: NativeHandle, requests: WriteRequests) {
    this.socket = socket;
    this.#handle = handle;
    this.#requests = requests;
  }

  write(chunk: Uint8Array, done: () => void): boolean {
    const requests = this.#requests;
    const request = requests.spare ?? requests.create();
    requests.spare = undefined;
    request.handle = this.#handle;
    request.oncomplete = completed;
    // Held from before the hand-over: whether or not the runtime copies.
    request.buffer = chunk;
    let status: number;
    try {
      status = this.#handle.writeBuffer(request, chunk);
    } catch {
      // The handle is closed: the socket's `close` event is on its way.
      status = -1;
    }
    if (status < 0 || requests.binding.streamBaseState[requests.binding.kLastWriteWasAsync] === 0) {
      request.buffer = undefined;
      if (status < 0) {
        this.socket.destroy();
        return true;
      }
      requests.spare = request;
      return true;
    }
    request.writer = this;
    request.bytes = chunk.byteLength;
    request.done = done;
    this.buffered += chunk.byteLength;
    return false;
  }
}

/** Writes through `socket.write`. */
export class StreamWriter implements ChunkWriter {
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

/** The native handle of `socket` when it has one a {@link HandleWriter} can use. */
export function nativeHandle(socket: object): NativeHandle | undefined {
  const handle = (socket as { _handle?: Partial<NativeHandle> | null })._handle;
  const encrypted = (socket as { encrypted?: boolean }).encrypted === true;
  return !encrypted && typeof handle?.writeBuffer === "function"
    ? handle as NativeHandle
    : undefined;
}

/**
 * The writer for `socket`: its native handle's where `requests` is given
 * (the handle writer was chosen) and the socket has one (a plain TCP
 * socket of `node:net`), else its `write`.
 */
export function chunkWriter(
  socket: Pick<Socket, "write" | "writableLength" | "destroy">,
  requests: WriteRequests | undefined,
): ChunkWriter {
  const handle = requests && nativeHandle(socket);
  return handle ? new HandleWriter(socket, handle, requests!) : new StreamWriter(socket);
}
