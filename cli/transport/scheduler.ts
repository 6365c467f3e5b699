/**
 * What the connections of Shark's own transport in one isolate share
 * (SPEC section 9, "Transports"): the list of outboxes with output queued
 * in this turn, written together once the turn's work is done; the last
 * text frame encoded; the slab small frames are cut from; the write
 * requests of the handle writer; the keep-alive sweeper. One object,
 * created at start and passed to every connection, instead of state kept
 * in modules.
 *
 * @module
 */
import { type Clock, REAL_CLOCK } from "../../src/clock.ts";
import { type ChunkWriter, chunkWriter, streamWrap, WriteRequests } from "./chunk_writer.ts";
import { FrameSlab, textFrame } from "./frame.ts";
import { KeepAliveSweeper } from "./keepalive_sweeper.ts";
import { chooseWriter, type WriterChoice } from "./writer_check.ts";
import type { Wire } from "./connection.ts";

/** Something with output queued in this turn. */
export interface Flushable {
  flush(): void;
}

/** Options of a {@link TransportScheduler}. */
export interface SchedulerOptions {
  /** The writer chosen for this isolate; by default the stream writer. */
  readonly writer?: WriterChoice;
  /** The clock of the keep-alive; by default the runtime's. */
  readonly clock?: Clock;
  /** Told once of the first write completion the handle writer did not wait for. */
  readonly onUnexpectedCompletion?: () => void;
}

/**
 * The shared state of one isolate's connections.
 *
 * @example
 * ```ts
 * const scheduler = await TransportScheduler.start();
 * console.log(scheduler.writer.kind); // "handle" where the self-check passed
 * ```
 */
export class TransportScheduler {
  /** The writer connections use, and why it was chosen. */
  readonly writer: WriterChoice;
  /** The keep-alive timer of every connection. */
  readonly keepAlive: KeepAliveSweeper;
  /** The handle writer's requests, `undefined` with the stream writer. */
  readonly requests: WriteRequests | undefined;
  readonly #dirty: Flushable[] = [];
  #flushScheduled = false;
  readonly #flushDirty = () => this.#flush();
  readonly #slab = new FrameSlab();
  /**
   * The last text frame encoded, and its text: a message fanned out to many
   * connections (the engine sends the same string to each, one after the
   * other) is encoded once, and every output queue holds the same bytes. One
   * entry, not a map by text: where every message goes to one connection (a
   * subscriber per topic), hashing and storing each text costs more than the
   * comparison (~0.6 against ~0.1 µs).
   */
  #lastText: string | undefined;
  #lastFrame: Uint8Array = new Uint8Array(0);

  constructor(options: SchedulerOptions = {}) {
    this.writer = options.writer ?? { kind: "stream", why: "not checked" };
    this.keepAlive = new KeepAliveSweeper(options.clock ?? REAL_CLOCK);
    const binding = this.writer.kind === "handle" ? streamWrap() : undefined;
    this.requests = binding && new WriteRequests(binding, options.onUnexpectedCompletion);
  }

  /**
   * A scheduler whose writer was chosen by the self-check (`writer_check.ts`),
   * or the stream writer where the environment says
   * `SHARK_TRANSPORT_WRITER=stream` (the portable path, for an operator who
   * distrusts the runtime's internals, and for the test suite's second run).
   */
  static async start(options: Omit<SchedulerOptions, "writer"> = {}): Promise<TransportScheduler> {
    const forced = envWriter() === "stream";
    const writer: WriterChoice = forced
      ? { kind: "stream", why: "SHARK_TRANSPORT_WRITER=stream" }
      : await chooseWriter();
    return new TransportScheduler({ ...options, writer });
  }

  /** Write completions the handle writer did not wait for (0 while the runtime behaves). */
  get unexpectedCompletions(): number {
    return this.requests?.unexpected ?? 0;
  }

  /** The writer for one connection's socket. */
  chunkWriter(wire: Wire): ChunkWriter {
    return chunkWriter(wire, this.requests);
  }

  /** The frame of `text`, encoded once for consecutive sends of the same text. */
  textFrame(text: string): Uint8Array {
    if (text !== this.#lastText) {
      this.#lastFrame = textFrame(text, this.#slab);
      this.#lastText = text;
    }
    return this.#lastFrame;
  }

  /** `outbox` has output queued: it is flushed once the current turn's work is done. */
  markDirty(outbox: Flushable): void {
    this.#dirty.push(outbox);
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    queueMicrotask(this.#flushDirty);
  }

  #flush(): void {
    this.#flushScheduled = false;
    const dirty = this.#dirty;
    // A flush may queue nothing new for others, so the list is stable while it runs.
    for (let i = 0; i < dirty.length; i++) dirty[i].flush();
    dirty.length = 0;
  }
}

/** `SHARK_TRANSPORT_WRITER`, or `undefined` where the environment may not be read. */
function envWriter(): string | undefined {
  try {
    return Deno.env.get("SHARK_TRANSPORT_WRITER");
  } catch {
    return undefined;
  }
}
