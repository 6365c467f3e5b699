/**
 * Sampling for log lines that may come in floods (invalid or dropped
 * envelopes): one line per period, with the count of those held back.
 *
 * @module
 */
import type { Clock } from "../clock.ts";

/** Invalid and dropped envelopes are logged at most once per this period (all are counted). */
const DROP_LOG_PERIOD_MS = 10_000;

/** Lets a log line through at most once per {@link DROP_LOG_PERIOD_MS}, counting the others. */
export class LogSampler {
  readonly #clock: Clock;
  #loggedAt = -Infinity;
  #suppressed = 0;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** The occurrences held back since the last one logged; `undefined`: hold this one back too. */
  take(): number | undefined {
    const now = this.#clock.now();
    if (now - this.#loggedAt < DROP_LOG_PERIOD_MS) {
      this.#suppressed++;
      return undefined;
    }
    const suppressed = this.#suppressed;
    this.#loggedAt = now;
    this.#suppressed = 0;
    return suppressed;
  }
}
