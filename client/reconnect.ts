/**
 * When the client connects again, and after how long: the close codes that
 * stop it come from Shark's own table (`CloseReason` in `src/protocol.ts`, a
 * module without imports), and the delays are capped exponential backoff
 * with full jitter.
 *
 * @module
 */
import { CloseReason } from "../src/protocol.ts";
import { MAX_TIMER } from "./clock.ts";
import type { BackoffOptions } from "./options.ts";

/** The backoff of a client that names none. */
export const DEFAULT_BACKOFF: Required<BackoffOptions> = {
  min: 500,
  max: 20_000,
  resetAfter: 10_000,
};

/**
 * Whether a close code gets a reconnect: Shark's table decides the codes it
 * knows (only those flagged `reconnect: false` stop), every other code
 * reconnects (1006 for a dropped network, whatever a proxy sends).
 */
export function reconnects(code: number): boolean {
  for (const reason of Object.values(CloseReason)) {
    if (reason.code === code) return reason.reconnect;
  }
  return true;
}

/** The wait before the `attempt`-th attempt in a row (from 0): `random() × min(max, min × 2ⁿ)` ms. */
export function backoffDelay(
  attempt: number,
  backoff: Required<BackoffOptions>,
  random: () => number,
): number {
  const cap = Math.min(backoff.max, backoff.min * 2 ** attempt, MAX_TIMER);
  return Math.round(random() * cap);
}
