/**
 * The output of one connection of Shark's own transport (SPEC section 9,
 * "Transports"): frames queued in a turn leave in one write once the turn's
 * work is done (the scheduler flushes every outbox marked in it); while a
 * write is not yet taken by the kernel, what is sent meanwhile waits and
 * leaves joined in one write once it is. `buffered` is what the
 * slow-consumer rule reads as `bufferedAmount`.
 *
 * @module
 */
import type { ChunkWriter } from "./chunk_writer.ts";
import type { Flushable, TransportScheduler } from "./scheduler.ts";

/**
 * Frames waiting behind a write under way are joined into one buffer by
 * this many: a small frame is a view of a shared slab (`frame.ts`), and a
 * connection that waits long (a slow client) would otherwise keep a slab
 * alive for every few bytes it holds.
 */
export const JOIN_WAITING = 64;

/** Joins `chunks` (`total` bytes, counted when not given) into one buffer. */
export function join(
  chunks: readonly Uint8Array[],
  total = chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0),
): Uint8Array {
  const all = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.byteLength;
  }
  return all;
}

/** One connection's output queue and its writer. */
export class Outbox implements Flushable {
  readonly #writer: ChunkWriter;
  readonly #scheduler: TransportScheduler;
  /** Half-closes the socket (its FIN follows what it still holds). */
  readonly #end: () => void;
  #queue: Uint8Array[] | undefined;
  /** Bytes queued and not yet handed to the writer. */
  #queued = 0;
  /** A write is not yet taken by the kernel. */
  #writing = false;
  /** Frames queued behind the write under way since they were last joined. */
  #waiting = 0;
  #dirty = false;
  /** Once the queue is written, half-close the socket. */
  #endWhenFlushed = false;
  #discarded = false;
  readonly #written = () => this.#onWritten();

  constructor(writer: ChunkWriter, scheduler: TransportScheduler, end: () => void) {
    this.#writer = writer;
    this.#scheduler = scheduler;
    this.#end = end;
  }

  /** Buffers queued: frames waiting behind a write under way are joined by {@link JOIN_WAITING}. */
  get queuedBuffers(): number {
    return this.#queue?.length ?? 0;
  }

  /** Bytes sent and not yet handed to the operating system (queued here or in the writer). */
  get buffered(): number {
    return this.#queued + (this.#discarded ? 0 : this.#writer.buffered);
  }

  /** Queues `frame`; it leaves once the turn's work is done. */
  enqueue(frame: Uint8Array): void {
    if (this.#discarded) return;
    const queue = this.#queue ??= [];
    queue.push(frame);
    this.#queued += frame.byteLength;
    if (this.#writing && ++this.#waiting >= JOIN_WAITING) {
      const tail = queue.splice(queue.length - this.#waiting);
      queue.push(join(tail));
      this.#waiting = 0;
    }
    if (this.#dirty) return;
    this.#dirty = true;
    this.#scheduler.markDirty(this);
  }

  /**
   * Hands what is queued to the writer: one write for all of it. Called by
   * the scheduler once per turn, and when the previous write is done. A
   * writer may call back from inside its `write`: the write is marked under
   * way before it is made, so the callback finds it so.
   */
  flush(): void {
    this.#dirty = false;
    const queue = this.#queue;
    if (this.#writing || this.#discarded || !queue || queue.length === 0) return;
    const chunk = queue.length === 1 ? queue[0] : join(queue, this.#queued);
    queue.length = 0;
    this.#queued = 0;
    this.#waiting = 0;
    this.#writing = true;
    if (this.#writer.write(chunk, this.#written)) this.#writing = false;
    this.#finishWhenFlushed();
  }

  /** Half-closes the socket once everything queued is written. */
  endWhenFlushed(): void {
    this.#endWhenFlushed = true;
    this.#finishWhenFlushed();
  }

  /** The socket is gone: what is queued is dropped, nothing more is written. */
  discard(): void {
    this.#discarded = true;
    this.#queue = undefined;
    this.#queued = 0;
  }

  #onWritten(): void {
    this.#writing = false;
    if ((this.#queue?.length ?? 0) > 0) this.flush();
    else this.#finishWhenFlushed();
  }

  #finishWhenFlushed(): void {
    if (
      !this.#endWhenFlushed || this.#writing || (this.#queue?.length ?? 0) > 0 || this.#discarded
    ) return;
    this.#endWhenFlushed = false;
    this.#end();
  }
}
