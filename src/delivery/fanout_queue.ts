/**
 * The fan-out queue (SPEC sections 3 and 8): payloads taken from pub/sub wait
 * here until the hub fans them out, in slices short enough that a burst never
 * holds the event loop. Its size is bounded (`server.max_fanout_queue_bytes`):
 * when publishing outruns fan-out, the queue refuses payloads rather than grow.
 *
 * @module
 */
import { type Clock, REAL_CLOCK } from "../clock.ts";
import type { Metrics } from "../metrics/metrics.ts";

/**
 * The fan-out runs at most this long before it lets the event loop write
 * what it has queued: under a burst the first subscribers hear the first
 * message at once, not after the whole burst.
 */
const FANOUT_SLICE_MS = 4;

/**
 * A slice after a yield lasts as long as the event loop took in between
 * (writing what the previous slice sent), up to this: under a burst the
 * fan-out and the writes share the CPU about evenly, and each connection's
 * frames leave joined in fewer, larger writes.
 */
const MAX_FANOUT_SLICE_MS = 32;

/** A long fan-out lets timers and I/O callbacks run at least this often. */
const EVENT_LOOP_TURN_MS = 16;

/** The fan-out reads the clock after about this many deliveries. */
const CLOCK_EVERY = 64;

/** Drained entries are cut off the front of the queue once there are this many. */
const COMPACT_AFTER = 4096;

/**
 * `publish()` or `POST /publish` while the fan-out queue is full: nothing was
 * published; try again later.
 *
 * @example
 * ```ts
 * try {
 *   await shark.publish({ subscription: "books.1", data: {} });
 * } catch (error) {
 *   if (error instanceof FanoutQueueFull) console.warn("overloaded: retry in a second");
 * }
 * ```
 */
export class FanoutQueueFull extends Error {
  override readonly name = "FanoutQueueFull";
}

/** A payload waiting to be fanned out. */
export interface Inbound {
  /** The topic (subscription name) it was published to. */
  readonly topic: string;
  /** The envelope's JSON text, as the adapter gave it. */
  readonly payload: string;
  /** When it was taken from pub/sub, in milliseconds since the epoch (`Clock.wallTime`). */
  readonly receivedAt: number;
}

/**
 * Fans one payload out; `behind` is the number of payloads waiting after it.
 * Returns a measure of the work done (about one per subscriber offered).
 */
export type FanOut = (inbound: Inbound, behind: number) => number;

/**
 * Queues payloads and hands them to a {@link FanOut}.
 *
 * Guarantees:
 * - every payload pushed before {@link FanoutQueue.close} is fanned out
 *   once, in push order, never inside `push` (the adapter's callback returns
 *   at once) and never re-entrantly: a payload pushed during a fan-out waits
 *   behind the ones already queued;
 * - payloads pushed in the same task (one read from the backend) share one
 *   received-at clock reading;
 * - a fan-out yields to the event loop after about `FANOUT_SLICE_MS`; a slice
 *   that follows a yield lasts as long as the event loop took in between,
 *   up to `MAX_FANOUT_SLICE_MS`; at least every `EVENT_LOOP_TURN_MS` the
 *   yield is a full event loop turn (a 0 ms timer of its {@link Clock}), so
 *   that timers and I/O callbacks (health checks, client events, the
 *   adapter's pings) are served during a burst;
 * - a payload is refused (`push` returns false) while the payloads waiting
 *   add up to `maxBytes` or more (JSON text length), so the queue holds at
 *   most `maxBytes` plus one payload;
 * - `metrics.queued` and `metrics.queuedBytes` are the number and size of
 *   the payloads waiting.
 *
 * @example
 * ```ts
 * const queue = new FanoutQueue((inbound, behind) => {
 *   console.log(inbound.topic, inbound.payload, behind);
 *   return 1;
 * }, new Metrics(), 16 * 1024 * 1024);
 * queue.push("books.1", '{"subscription":"books.1","data":{}}');
 * ```
 */
export class FanoutQueue {
  readonly #fanOut: FanOut;
  readonly #metrics: Metrics;
  readonly #maxBytes: number;
  readonly #clock: Clock;
  #bytes = 0;
  #queue: (Inbound | undefined)[] = [];
  #head = 0;
  #draining = false;
  #yielder: MessageChannel | undefined;
  /** The full event loop turn the fan-out waits for, if it does. */
  #turn: unknown;
  /** The clock reading shared by the payloads received in the current task. */
  #receivedAt: number | undefined;
  readonly #endOfTask = () => this.#receivedAt = undefined;
  readonly #continue = () => this.#drain();
  readonly #afterTurn = () => {
    this.#turn = undefined;
    this.#drain();
  };
  /** When the fan-out last let a full event loop turn run. */
  #lastTurn = -Infinity;
  /** When the fan-out last yielded, while it has more to do (undefined: it has not). */
  #yieldedAt: number | undefined;

  /**
   * `clock`: what the slices are timed by, the full event loop turns wait on
   * and the received-at times are read from (tests give their own).
   */
  constructor(fanOut: FanOut, metrics: Metrics, maxBytes: number, clock: Clock = REAL_CLOCK) {
    this.#fanOut = fanOut;
    this.#metrics = metrics;
    this.#maxBytes = maxBytes;
    this.#clock = clock;
  }

  /** Whether the queue is full: payloads are refused until the fan-out catches up. */
  get full(): boolean {
    return this.#bytes >= this.#maxBytes;
  }

  /**
   * Queues a payload; its fan-out happens in a later microtask. Returns false,
   * queuing nothing, when the queue is full.
   */
  push(topic: string, payload: string): boolean {
    if (this.full) return false;
    if (this.#receivedAt === undefined) {
      this.#receivedAt = this.#clock.wallTime();
      queueMicrotask(this.#endOfTask);
    }
    this.#queue.push({ topic, payload, receivedAt: this.#receivedAt });
    this.#metrics.queued++;
    this.#count(payload.length);
    if (!this.#draining) {
      this.#draining = true;
      queueMicrotask(this.#continue);
    }
    return true;
  }

  /** Drops what is waiting and releases the queue's resources, its timer included. */
  close(): void {
    this.#yielder?.port1.close();
    this.#yielder = undefined;
    this.#clock.clearTimeout(this.#turn);
    this.#turn = undefined;
    this.#draining = false;
    this.#yieldedAt = undefined;
    this.#metrics.queued -= this.#queue.length - this.#head;
    this.#count(-this.#bytes);
    this.#queue = [];
    this.#head = 0;
  }

  #count(bytes: number): void {
    this.#bytes += bytes;
    this.#metrics.queuedBytes = this.#bytes;
  }

  #drain(): void {
    const started = this.#clock.now();
    const gap = this.#yieldedAt === undefined ? 0 : started - this.#yieldedAt;
    const slice = Math.min(MAX_FANOUT_SLICE_MS, Math.max(FANOUT_SLICE_MS, gap));
    const queue = this.#queue;
    let work = 0;
    while (this.#head < queue.length) {
      const inbound = queue[this.#head]!;
      queue[this.#head++] = undefined;
      this.#metrics.queued--;
      this.#count(-inbound.payload.length);
      work += this.#fanOut(inbound, queue.length - this.#head);
      // The clock is read once per CLOCK_EVERY deliveries, not per envelope.
      if (work < CLOCK_EVERY || this.#head === queue.length) continue;
      work = 0;
      const now = this.#clock.now();
      if (now - started >= slice) {
        this.#yieldedAt = now;
        if (this.#head > COMPACT_AFTER) {
          this.#queue = queue.slice(this.#head);
          this.#head = 0;
        }
        this.#yieldThenDrain();
        return;
      }
    }
    this.#queue = [];
    this.#head = 0;
    this.#draining = false;
    this.#yieldedAt = undefined;
  }

  /**
   * Continues the fan-out in a new task. A MessageChannel hop costs almost
   * nothing and lets the runtime write what was sent, but starves timers and
   * I/O callbacks; so at least every EVENT_LOOP_TURN_MS the hop is a timer,
   * a full turn of the event loop where client events, health checks and the
   * adapter's pings are served too.
   */
  #yieldThenDrain(): void {
    const now = this.#clock.now();
    if (now - this.#lastTurn >= EVENT_LOOP_TURN_MS) {
      this.#lastTurn = now;
      this.#turn = this.#clock.setTimeout(this.#afterTurn, 0);
      return;
    }
    if (!this.#yielder) {
      this.#yielder = new MessageChannel();
      this.#yielder.port1.onmessage = this.#continue;
    }
    this.#yielder.port2.postMessage(null);
  }
}
