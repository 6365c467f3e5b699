/**
 * Where the client reads the time and sets its timers: every wait of the
 * client (reconnect backoff, the open, ping and pong timeouts, JWT refresh,
 * resubscribe retries, request timeouts) goes through one {@link Clock}, so
 * that a test can move time itself instead of waiting for it.
 *
 * @module
 */

/**
 * The time and timers the client uses (the `clock` option). Structurally the
 * engine's clock, with one difference: `now()` is wall-clock time, because a
 * JWT's `exp` is compared with it.
 *
 * @example
 * ```ts
 * const clock: Clock = {
 *   now: () => Date.now(),
 *   setTimeout: (task, ms) => setTimeout(task, ms),
 *   clearTimeout: (timer) => clearTimeout(timer as number),
 * };
 * ```
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Runs `task` once after `ms` milliseconds; returns the timer's handle. */
  setTimeout(task: () => void, ms: number): unknown;
  /** Cancels a timer by its handle; `undefined` or a finished timer is ignored. */
  clearTimeout(timer: unknown): void;
}

/** The runtime's clock and timers, the default. */
export const SYSTEM_CLOCK: Clock = {
  now: () => Date.now(),
  setTimeout: (task, ms) => setTimeout(task, ms),
  clearTimeout: (timer) => clearTimeout(timer as ReturnType<typeof setTimeout> | undefined),
};

/** Timers fire at once beyond this (ms, about 24.8 days): a long-lived token must not loop. */
export const MAX_TIMER = 2 ** 31 - 1;
