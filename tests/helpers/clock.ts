/**
 * Time that moves only when the test says so, for rules that wait.
 *
 * @module
 */
import type { Clock } from "../../src/subscription.ts";
import { MAX_TIMER_MS } from "../../src/util.ts";

/** Time that moves only when told to; due timers run in time order. */
export class FakeClock implements Clock {
  #now = 0;
  #nextId = 1;
  readonly #timers = new Map<number, { at: number; task: () => void }>();

  now(): number {
    return this.#now;
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
   * time (one overdue after a {@link stall}: at once, late).
   */
  tick(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      let next: [number, { at: number; task: () => void }] | undefined;
      for (const entry of this.#timers) {
        if (entry[1].at <= end && (!next || entry[1].at < next[1].at)) next = entry;
      }
      if (!next) break;
      this.#timers.delete(next[0]);
      this.#now = Math.max(this.#now, next[1].at);
      next[1].task();
    }
    this.#now = end;
  }
}
