/**
 * `server.idle_timeout` (SPEC section 8, a Shark extension): a connection
 * that, this long after its upgrade, has not authenticated and holds no
 * subscription is closed with 4008 "idle timeout". One timer serves every
 * connection: they are watched in the order they opened, which is the order
 * their deadlines come in.
 *
 * @module
 */
import { CloseReason } from "../protocol.ts";
import { type Clock, REAL_CLOCK } from "../clock.ts";

/** What the sweep reads of a connection (a `Session`). */
export interface IdleCandidate {
  /** Whether an `auth` event succeeded. */
  readonly authenticated: boolean;
  /** The subscriptions it holds. */
  readonly subscriptions: { readonly size: number };
  /** Whether it has ended already. */
  readonly closed: boolean;
  /** Closes it. */
  close(reason: CloseReason): unknown;
}

/** The watch list is cut down once this many entries at its front are done. */
const COMPACT_AFTER = 1024;

/**
 * Closes connections still idle at their deadline.
 *
 * @example
 * ```ts
 * const sweep = new IdleSweep(30);
 * sweep.watch(session); // closed with 4008 in 30 s unless it authenticates or subscribes
 * ```
 */
export class IdleSweep {
  readonly #timeoutMs: number;
  readonly #clock: Clock;
  #watched: ({ readonly connection: IdleCandidate; readonly deadline: number } | undefined)[] = [];
  #head = 0;
  #timer: unknown;

  /** @param timeout `server.idle_timeout` in seconds. */
  constructor(timeout: number, clock: Clock = REAL_CLOCK) {
    this.#timeoutMs = timeout * 1000;
    this.#clock = clock;
  }

  /** Starts the idle timeout of a connection that has just opened. */
  watch(connection: IdleCandidate): void {
    this.#watched.push({ connection, deadline: this.#clock.now() + this.#timeoutMs });
    if (this.#timer === undefined) this.#schedule();
  }

  /** Stops watching (at shutdown). */
  close(): void {
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#watched = [];
    this.#head = 0;
  }

  #schedule(): void {
    const next = this.#watched[this.#head];
    if (!next) {
      this.#watched = [];
      this.#head = 0;
      return;
    }
    const wait = Math.max(0, next.deadline - this.#clock.now());
    this.#timer = this.#clock.setTimeout(() => this.#sweep(), wait);
  }

  #sweep(): void {
    this.#timer = undefined;
    const now = this.#clock.now();
    const watched = this.#watched;
    while (this.#head < watched.length && watched[this.#head]!.deadline <= now) {
      const { connection } = watched[this.#head]!;
      watched[this.#head++] = undefined;
      if (connection.closed || connection.authenticated || connection.subscriptions.size > 0) {
        continue;
      }
      connection.close(CloseReason.idleTimeout);
    }
    if (this.#head > COMPACT_AFTER) {
      this.#watched = watched.slice(this.#head);
      this.#head = 0;
    }
    this.#schedule();
  }
}
