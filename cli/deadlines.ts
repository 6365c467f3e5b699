/**
 * Many timeouts of the same length on one timer (the callback tries in
 * flight, the handshakes of the transport): each adds its deadline and marks
 * it done when it settles, instead of setting and clearing a timer of its
 * own (~14 µs through the runtime's `setTimeout` and `clearTimeout`, about a
 * third of a callback try over a kept-alive connection).
 *
 * @module
 */
import type { Clock } from "../src/clock.ts";

/**
 * How late a deadline may be noticed: the timer is not re-armed sooner than
 * this after it ran, so that a steady stream of tries wakes it at most this
 * often.
 */
export const DEADLINE_SLACK_MS = 50;

/** One try's deadline. */
export interface Deadline {
  readonly at: number;
  readonly onExpire: () => void;
  /** Set when the try settled in time: its deadline no longer matters. */
  done: boolean;
}

/**
 * Deadlines in the order they fall due, with one timer for the first.
 *
 * @example
 * ```ts
 * const deadlines = new Deadlines(REAL_CLOCK);
 * const deadline = deadlines.add(15_000, () => connection.fail(timeoutError()));
 * await answer;
 * deadlines.settle(deadline);
 * ```
 */
export class Deadlines {
  readonly #clock: Clock;
  #queue: Deadline[] = [];
  #head = 0;
  #live = 0;
  #timer: unknown;
  #timerAt = Infinity;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Deadlines not yet done nor expired. */
  get live(): number {
    return this.#live;
  }

  /** Calls `onExpire` once `ms` milliseconds have passed, unless {@link settle}d before. */
  add(ms: number, onExpire: () => void): Deadline {
    const deadline: Deadline = { at: this.#clock.now() + ms, onExpire, done: false };
    const queue = this.#queue;
    // Tries share one timeout, so a new deadline is nearly always the last.
    let index = queue.length;
    while (index > this.#head && queue[index - 1].at > deadline.at) index--;
    queue.splice(index, 0, deadline);
    this.#live++;
    if (deadline.at < this.#timerAt) this.#arm(deadline.at);
    return deadline;
  }

  /** The try settled: its deadline is forgotten. */
  settle(deadline: Deadline): void {
    if (deadline.done) return;
    deadline.done = true;
    if (--this.#live === 0) return this.#reset();
    // Tries mostly settle in the order they started: done ones leave the front at once.
    const queue = this.#queue;
    while (queue[this.#head].done) this.#head++;
    if (this.#head > 1024 && this.#head * 2 > queue.length) {
      this.#queue = queue.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Forgets every deadline without calling them. */
  clear(): void {
    for (let index = this.#head; index < this.#queue.length; index++) {
      this.#queue[index].done = true;
    }
    this.#live = 0;
    this.#reset();
  }

  #reset(): void {
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
    this.#queue = [];
    this.#head = 0;
  }

  #arm(at: number): void {
    this.#clock.clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = this.#clock.setTimeout(() => this.#expire(), Math.max(0, at - this.#clock.now()));
  }

  #expire(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = this.#clock.now();
    const queue = this.#queue;
    while (this.#head < queue.length && (queue[this.#head].done || queue[this.#head].at <= now)) {
      const deadline = queue[this.#head++];
      if (deadline.done) continue;
      deadline.done = true;
      this.#live--;
      deadline.onExpire();
    }
    if (this.#live === 0) return this.#reset();
    this.#arm(Math.max(this.#queue[this.#head].at, now + DEADLINE_SLACK_MS));
  }
}
