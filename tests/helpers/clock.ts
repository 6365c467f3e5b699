/**
 * Time that moves only when the test says so, for rules that wait: given to
 * a `Subscription`, a `Session`, an `IdleSweep` or a whole engine
 * (`TestShark.start(config, { clock })`), it lets a test check a rule at its
 * exact millisecond, however loaded the machine is.
 *
 * @module
 */
import { type Clock, MAX_TIMER_MS } from "../../src/clock.ts";
import { waitUntil } from "./wait.ts";

/** Where a {@link FakeClock}'s wall time starts: `wallTime()` is this plus `now()`. */
export const FAKE_EPOCH_MS: number = Date.UTC(2024, 0, 1);

/** Options of a {@link FakeClock}. */
export interface FakeClockOptions {
  /**
   * How far time moves at each reading of `now()` (default 0): code that
   * times its own work, as the fan-out queue does, sees every step take this
   * long.
   */
  readonly perReading?: number;
}

/** Time that moves only when told to; due timers run in time order. */
export class FakeClock implements Clock {
  readonly #perReading: number;
  #now = 0;
  #nextId = 1;
  readonly #timers = new Map<number, { at: number; task: () => void }>();

  constructor(options: FakeClockOptions = {}) {
    this.#perReading = options.perReading ?? 0;
  }

  now(): number {
    const now = this.#now;
    this.#now += this.#perReading;
    return now;
  }

  wallTime(): number {
    return FAKE_EPOCH_MS + this.#now;
  }

  /** As the runtime's timers: a delay past 2^31 − 1 ms overflows and fires after 1 ms. */
  setTimeout(task: () => void, ms: number): number {
    const id = this.#nextId++;
    this.#timers.set(id, { at: this.#now + (ms > MAX_TIMER_MS ? 1 : ms), task });
    return id;
  }

  clearTimeout(timer: unknown): void {
    this.#timers.delete(timer as number);
  }

  /** Timers set and not yet run or cleared. */
  get pending(): number {
    return this.#timers.size;
  }

  /**
   * Moves time `ms` forward and runs no timer, as a blocked event loop does:
   * the timers that fell due meanwhile run late, at the next {@link tick}.
   */
  stall(ms: number): void {
    this.#now += ms;
  }

  /**
   * Moves time `ms` forward, running each timer due on the way at its own
   * time (one overdue after a {@link stall}: at once, late; a timer set
   * meanwhile runs too if it is due by then).
   */
  tick(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      const next = this.#next();
      if (!next || next[1].at > end) break;
      this.#timers.delete(next[0]);
      this.#now = Math.max(this.#now, next[1].at);
      next[1].task();
    }
    this.#now = Math.max(this.#now, end);
  }

  /**
   * Waits (in real time, at most `timeoutMs`) until a timer is set, as one
   * is after an asynchronous step (a service's reply), then moves time to it
   * and runs it with any due at the same time. Returns that time.
   */
  async runNext(timeoutMs = 5000): Promise<number> {
    const [, { at }] = await waitUntil(() => this.#next(), timeoutMs, "a timer set");
    const now = Math.max(this.#now, at);
    this.tick(now - this.#now);
    return now;
  }

  #next(): [number, { at: number; task: () => void }] | undefined {
    let next: [number, { at: number; task: () => void }] | undefined;
    for (const entry of this.#timers) {
      if (!next || entry[1].at < next[1].at) next = entry;
    }
    return next;
  }
}
