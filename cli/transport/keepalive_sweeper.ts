/**
 * The timer behind the keep-alive of Shark's own transport (SPEC section 9,
 * "Transports"; `ws_ping`): open connections with a keep-alive are checked
 * together by one timer. One timer per connection costs more, in memory and
 * in the runtime's timer queue, than looking at every connection a few times
 * per idle period.
 *
 * @module
 */

/** What the sweeper looks at: a connection that pings or drops itself as `now` says. */
export interface KeepAlive {
  checkAlive(now: number): void;
}

const watched = new Set<KeepAlive>();
let sweeper: ReturnType<typeof setInterval> | undefined;
let sweepMs = Infinity;

/**
 * Checks `connection` from now on, often enough for `halfMs` (half its idle
 * timeout): every eighth of it, between 50 ms and 1 s, so that the ping and
 * the drop come at most that late.
 */
export function watch(connection: KeepAlive, halfMs: number): void {
  watched.add(connection);
  const period = Math.min(1000, Math.max(50, halfMs / 8));
  if (sweeper !== undefined && period >= sweepMs) return;
  clearInterval(sweeper);
  sweepMs = period;
  sweeper = setInterval(sweep, period);
}

/** Stops checking `connection`; the timer stops with the last one. */
export function unwatch(connection: KeepAlive): void {
  if (!watched.delete(connection) || watched.size > 0) return;
  clearInterval(sweeper);
  sweeper = undefined;
  sweepMs = Infinity;
}

function sweep(): void {
  const now = performance.now();
  for (const connection of watched) connection.checkAlive(now);
}
