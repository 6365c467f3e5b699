/**
 * The timer behind the keep-alive of Shark's own transport (SPEC section 9,
 * "Transports"; `ws_ping`): open connections with a keep-alive are checked
 * together by one timer. One timer per connection costs more, in memory and
 * in the runtime's timer queue, than looking at every connection a few times
 * per idle period. Time comes from a {@link Clock}, so that the rule is
 * tested in milliseconds of test time.
 *
 * @module
 */
import type { Clock } from "../../src/clock.ts";

/** What the sweeper looks at: a connection that pings or drops itself as `now` says. */
export interface KeepAlive {
  checkAlive(now: number): void;
}

/** Checks the connections it watches, often enough for the shortest idle period among them. */
export class KeepAliveSweeper {
  readonly #clock: Clock;
  readonly #watched = new Set<KeepAlive>();
  #timer: unknown;
  #periodMs = Infinity;
  readonly #sweep = () => {
    this.#timer = this.#clock.setTimeout(this.#sweep, this.#periodMs);
    const now = this.#clock.now();
    for (const connection of this.#watched) connection.checkAlive(now);
  };

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** The clock the connections read their last activity from. */
  now(): number {
    return this.#clock.now();
  }

  /**
   * Checks `connection` from now on, often enough for `halfMs` (half its
   * idle timeout): every eighth of it, between 50 ms and 1 s, so that the
   * ping and the drop come at most that late.
   */
  watch(connection: KeepAlive, halfMs: number): void {
    this.#watched.add(connection);
    const period = Math.min(1000, Math.max(50, halfMs / 8));
    if (this.#timer !== undefined && period >= this.#periodMs) return;
    this.#clock.clearTimeout(this.#timer);
    this.#periodMs = period;
    this.#timer = this.#clock.setTimeout(this.#sweep, period);
  }

  /** Stops checking `connection`; the timer stops with the last one. */
  unwatch(connection: KeepAlive): void {
    if (!this.#watched.delete(connection) || this.#watched.size > 0) return;
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#periodMs = Infinity;
  }
}
