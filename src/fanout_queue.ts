/**
 * The fan-out queue (SPEC sections 3 and 8): payloads taken from pub/sub wait
 * here until the hub fans them out, in slices short enough that a burst never
 * holds the event loop.
 *
 * @module
 */
import type { Metrics } from "./metrics.ts";

/**
 * The fan-out runs at most this long before it lets the event loop write
 * what it has queued: under a burst the first subscribers hear the first
 * message at once, not after the whole burst.
 */
const FANOUT_SLICE_MS = 4;

/** A long fan-out lets timers and I/O callbacks run at least this often. */
const EVENT_LOOP_TURN_MS = 16;

/** The fan-out reads the clock after about this many deliveries. */
const CLOCK_EVERY = 64;

/** Drained entries are cut off the front of the queue once there are this many. */
const COMPACT_AFTER = 4096;

/** A payload waiting to be fanned out. */
export interface Inbound {
  /** The topic (subscription name) it was published to. */
  readonly topic: string;
  /** The envelope's JSON text, as the adapter gave it. */
  readonly payload: string;
  /** When it was taken from pub/sub (`Date.now()`). */
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
 * - a fan-out yields to the event loop after about `FANOUT_SLICE_MS`, and at
 *   least every `EVENT_LOOP_TURN_MS` that yield is a full event loop turn, so
 *   that timers and I/O callbacks (health checks, client events, the adapter's
 *   pings) are served during a burst;
 * - `metrics.queued` is the number of payloads waiting.
 *
 * @example
 * ```ts
 * const queue = new FanoutQueue((inbound, behind) => {
 *   console.log(inbound.topic, inbound.payload, behind);
 *   return 1;
 * }, new Metrics());
 * queue.push("books.1", '{"subscription":"books.1","data":{}}');
 * ```
 */
export class FanoutQueue {
  readonly #fanOut: FanOut;
  readonly #metrics: Metrics;
  #queue: (Inbound | undefined)[] = [];
  #head = 0;
  #draining = false;
  #yielder: MessageChannel | undefined;
  /** The clock reading shared by the payloads received in the current task. */
  #receivedAt: number | undefined;
  readonly #endOfTask = () => this.#receivedAt = undefined;
  readonly #continue = () => this.#drain();
  /** When the fan-out last let a full event loop turn run. */
  #lastTurn = -Infinity;

  constructor(fanOut: FanOut, metrics: Metrics) {
    this.#fanOut = fanOut;
    this.#metrics = metrics;
  }

  /** Queues a payload; its fan-out happens in a later microtask. */
  push(topic: string, payload: string): void {
    if (this.#receivedAt === undefined) {
      this.#receivedAt = Date.now();
      queueMicrotask(this.#endOfTask);
    }
    this.#queue.push({ topic, payload, receivedAt: this.#receivedAt });
    this.#metrics.queued++;
    if (!this.#draining) {
      this.#draining = true;
      queueMicrotask(this.#continue);
    }
  }

  /** Drops what is waiting and releases the queue's resources. */
  close(): void {
    this.#yielder?.port1.close();
    this.#yielder = undefined;
    this.#metrics.queued -= this.#queue.length - this.#head;
    this.#queue = [];
    this.#head = 0;
  }

  #drain(): void {
    const started = performance.now();
    const queue = this.#queue;
    let work = 0;
    while (this.#head < queue.length) {
      const inbound = queue[this.#head]!;
      queue[this.#head++] = undefined;
      this.#metrics.queued--;
      work += this.#fanOut(inbound, queue.length - this.#head);
      // The clock is read once per CLOCK_EVERY deliveries, not per envelope.
      if (work < CLOCK_EVERY || this.#head === queue.length) continue;
      work = 0;
      if (performance.now() - started >= FANOUT_SLICE_MS) {
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
  }

  /**
   * Continues the fan-out in a new task. A MessageChannel hop costs almost
   * nothing and lets the runtime write what was sent, but starves timers and
   * I/O callbacks; so at least every EVENT_LOOP_TURN_MS the hop is a timer,
   * a full turn of the event loop where client events, health checks and the
   * adapter's pings are served too.
   */
  #yieldThenDrain(): void {
    const now = performance.now();
    if (now - this.#lastTurn >= EVENT_LOOP_TURN_MS) {
      this.#lastTurn = now;
      setTimeout(this.#continue, 0);
      return;
    }
    if (!this.#yielder) {
      this.#yielder = new MessageChannel();
      this.#yielder.port1.onmessage = this.#continue;
    }
    this.#yielder.port2.postMessage(null);
  }
}
