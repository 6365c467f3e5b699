/**
 * The time the engine's rules read and the timers they set, injected rather
 * than read from the runtime: a test hands the engine a fake clock and moves
 * time itself, so that a rule is checked at its exact millisecond however
 * loaded the machine is.
 *
 * @module
 */

/**
 * The time the engine's rules read and the timers they set: subscription
 * renewals and heartbeats, throttles, the idle sweep, credential expiry,
 * the fan-out queue's slices, the shutdown timeout, and the timestamps on
 * delivered messages. {@link REAL_CLOCK} is the runtime's.
 *
 * Guarantees an implementation must keep: `now()` never goes back; a timer
 * never runs before its time, never inside `setTimeout`, and never after
 * `clearTimeout`.
 *
 * @example
 * ```ts
 * import { type Clock, Shark } from "../mod.ts";
 *
 * // The runtime's time, as Shark reads it when given no clock; a test
 * // passes one whose time only moves when the test says so.
 * const clock: Clock = {
 *   now: () => performance.now(),
 *   wallTime: () => Date.now(),
 *   setTimeout: (task, ms) => setTimeout(task, ms),
 *   clearTimeout: (timer) => clearTimeout(timer as number | undefined),
 * };
 * const shark = new Shark({ services: { books: { require_authentication: false } } }, { clock });
 * await shark.shutdown();
 * ```
 */
export interface Clock {
  /** A monotonic time in milliseconds: what durations and deadlines are measured by. */
  now(): number;
  /** Milliseconds since the Unix epoch, as `Date.now()`: what timestamps on the wire say. */
  wallTime(): number;
  /** Runs `task` once after `ms` milliseconds; returns the timer's handle. */
  setTimeout(task: () => void, ms: number): unknown;
  /** Cancels a timer by its handle; `undefined` or a finished timer is ignored. */
  clearTimeout(timer: unknown): void;
}

/**
 * The runtime's clock and timers: `performance.now()`, `Date.now()`,
 * `setTimeout` and `clearTimeout`.
 *
 * @example
 * ```ts
 * import { REAL_CLOCK } from "./clock.ts";
 *
 * console.log(new Date(REAL_CLOCK.wallTime()).toISOString());
 * ```
 */
export const REAL_CLOCK: Clock = {
  now: () => performance.now(),
  wallTime: () => Date.now(),
  setTimeout: (task, ms) => setTimeout(task, ms),
  clearTimeout: (timer) => clearTimeout(timer as ReturnType<typeof setTimeout> | undefined),
};

/**
 * The longest delay a timer takes: 2^31 − 1 ms, about 24.8 days. A longer
 * one overflows and fires at once.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Resolves after `ms` milliseconds of `clock`, or at once when `signal` aborts. */
export function delay(ms: number, signal?: AbortSignal, clock: Clock = REAL_CLOCK): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clock.clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = clock.setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** The two timestamps formatted last: `received_at` and `sent_at` alternate. */
const isoCache: [number, string, number, string] = [NaN, "", NaN, ""];

/**
 * `new Date(millis).toISOString()` (which costs about 1.5 µs), formatted once
 * per millisecond: a burst stamps thousands of envelopes within the same few
 * milliseconds.
 */
export function isoTime(millis: number = Date.now()): string {
  const cache = isoCache;
  if (millis === cache[0]) return cache[1];
  if (millis === cache[2]) return cache[3];
  const text = new Date(millis).toISOString();
  cache[2] = cache[0];
  cache[3] = cache[1];
  cache[0] = millis;
  cache[1] = text;
  return text;
}
