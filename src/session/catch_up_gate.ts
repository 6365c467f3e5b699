/**
 * Admission while a node catches up (`server.catch_up_sessions`): when
 * thousands of clients come back at once, each newcomer's work (its
 * handshake, `auth`, its subscribes and their callbacks) competes with the
 * deliveries to the clients already connected. The runtime serves ready
 * sockets in turn, so the pub/sub socket's read waits behind every
 * newcomer's: measured in a storm of 5,000, a message was on the wire to
 * Shark within a millisecond of its publish and read 100–200 ms later.
 *
 * The gate bounds the sessions at work at once: a new connection goes in
 * while fewer than a window of sessions are busy, else it waits, unread,
 * until one is done or the window grows. The window starts at `limit`; each
 * {@link RECHECK_MS} it halves (never below `limit`) while the runtime's I/O
 * is behind (the `pressure` reading: a probe of the transport), and grows
 * by an eighth of `limit` while I/O keeps up, never past twice the sessions
 * busy. So a steady load does not wait (the window keeps ahead of it), a
 * burst of thousands goes in at the window's pace, in arrival order, and
 * while I/O is behind the sessions at work come down to `limit`. Nobody is
 * refused: a connection waits at most `maxWaitMs`, then goes in.
 *
 * A session is busy from the moment it is let in until it sends its first
 * event (at most {@link SETTLE_MS}), and whenever it has events being handled.
 *
 * @module
 */
import type { Clock } from "../clock.ts";

/**
 * Whether the runtime's I/O is behind now (a socket read waits longer than
 * it should); the CLI's is a probe through a Unix socket (`cli/io_probe.ts`).
 * Closed with the gate.
 */
export interface Pressure {
  behind(): boolean;
  close?(): void;
}

/** No reading: the gate is open, it never holds anyone. */
export const NO_PRESSURE: Pressure = { behind: () => false };

/** A new session that sends nothing stops counting as busy after this long. */
export const SETTLE_MS = 250;

/** The window is adjusted at most this often, and waiting connections looked at at least this often. */
export const RECHECK_MS = 5;

/** The window's ceiling. */
const MAX_WINDOW = 1 << 20;

/** What a {@link CatchUpGate} is built from. */
export interface CatchUpGateOptions {
  /** The smallest window: from this many busy sessions new ones may wait. */
  readonly limit: number;
  /** The longest a connection waits, in milliseconds. */
  readonly maxWaitMs: number;
  readonly pressure: Pressure;
  readonly clock: Clock;
  /** Told when a connection starts waiting (+1) and stops (-1). */
  readonly onWait?: (change: 1 | -1) => void;
}

/** A connection waiting at the gate. */
interface Waiter {
  readonly since: number;
  readonly go: () => void;
}

/**
 * Counts busy sessions and holds new connections beyond a window of them.
 * A place taken by {@link CatchUpGate.enter} is given back by
 * {@link CatchUpGate.opened}, with the session it became or `undefined`.
 *
 * @example
 * ```ts
 * import { REAL_CLOCK } from "../clock.ts";
 *
 * const gate = new CatchUpGate<object>({
 *   limit: 64,
 *   maxWaitMs: 10_000,
 *   pressure: NO_PRESSURE,
 *   clock: REAL_CLOCK,
 * });
 * await gate.enter(); // at once: no pressure
 * const session = {};
 * gate.opened(session); // busy until its first event
 * gate.started(session);
 * gate.finished(session);
 * ```
 */
export class CatchUpGate<S extends object> {
  readonly #options: CatchUpGateOptions;
  /** Sessions let in that have not sent an event yet, with when they were let in. */
  readonly #fresh = new Map<S, number>();
  /** Sessions with events being handled. */
  readonly #handling = new Set<S>();
  /** Places taken by `enter` and not yet given back by `opened`. */
  #entering = 0;
  #waiting: Waiter[] = [];
  #window: number;
  #adjustedAt = -Infinity;
  #timer: unknown;
  /** Without a pressure reading, or once closed, the gate holds nobody. */
  #open: boolean;
  readonly #recheck = () => {
    this.#timer = undefined;
    this.#letIn();
  };

  constructor(options: CatchUpGateOptions) {
    this.#options = options;
    this.#window = options.limit;
    this.#open = options.pressure === NO_PRESSURE;
  }

  /** Sessions counted as busy now (places taken by `enter` included). */
  get busy(): number {
    this.#forgetSettled();
    return this.#fresh.size + this.#handling.size + this.#entering;
  }

  /** Connections waiting now. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** From how many busy sessions connections wait now, while under pressure. */
  get window(): number {
    return this.#window;
  }

  /**
   * Takes a place for a new connection: at once (`undefined`, no promise)
   * unless connections already wait or a window of sessions is busy; else
   * the promise resolves when it may go in.
   */
  enter(): Promise<void> | undefined {
    if (this.#open) return undefined;
    if (this.#waiting.length === 0 && this.#hasRoom()) {
      this.#entering++;
      return undefined;
    }
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#waiting.push({ since: this.#options.clock.now(), go: resolve });
    this.#options.onWait?.(1);
    this.#schedule();
    return promise;
  }

  /** The place a connection took became `session` (busy until its first event, at most SETTLE_MS), or nothing. */
  opened(session: S | undefined): void {
    if (this.#open) return;
    this.#entering--;
    if (session) this.#fresh.set(session, this.#options.clock.now());
    else this.#letIn();
  }

  /** `session` starts handling events. */
  started(session: S): void {
    if (this.#open) return;
    this.#fresh.delete(session);
    this.#handling.add(session);
  }

  /** `session` has handled every event it had. */
  finished(session: S): void {
    if (this.#open) return;
    this.#handling.delete(session);
    this.#letIn();
  }

  /** `session` closed: it is no longer busy. */
  closed(session: S): void {
    if (this.#open) return;
    if (this.#fresh.delete(session) || this.#handling.delete(session)) this.#letIn();
  }

  /** Lets every waiting connection in, and every one from now on, and stops the timer (shutdown). */
  close(): void {
    this.#open = true;
    this.#fresh.clear();
    this.#handling.clear();
    this.#options.pressure.close?.();
    this.#options.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const waiter of waiting) this.#go(waiter);
  }

  /** Whether a new connection may go in: fewer sessions than the window are busy. */
  #hasRoom(): boolean {
    this.#adjust();
    return this.busy < this.#window;
  }

  /** At most once per RECHECK_MS: the window halves while I/O is behind, else it grows. */
  #adjust(): void {
    const now = this.#options.clock.now();
    if (now - this.#adjustedAt < RECHECK_MS) return;
    this.#adjustedAt = now;
    const { limit } = this.#options;
    if (this.#options.pressure.behind()) {
      this.#window = Math.max(limit, Math.min(this.#window, this.busy) >> 1);
    } else {
      const grown = Math.min(MAX_WINDOW, this.#window + Math.max(1, limit >> 3));
      this.#window = Math.max(limit, Math.min(grown, 2 * this.busy));
    }
  }

  /** Lets waiting connections in, oldest first, while the window allows (or they waited too long). */
  #letIn(): void {
    if (this.#waiting.length === 0) return;
    const now = this.#options.clock.now();
    const waiting = this.#waiting;
    let index = 0;
    while (index < waiting.length) {
      const waiter = waiting[index]!;
      if (!this.#hasRoom() && now - waiter.since < this.#options.maxWaitMs) break;
      this.#entering++;
      index++;
      this.#go(waiter);
    }
    if (index > 0) this.#waiting = waiting.slice(index);
    this.#schedule();
  }

  #go(waiter: Waiter): void {
    this.#options.onWait?.(-1);
    waiter.go();
  }

  #schedule(): void {
    if (this.#waiting.length === 0 || this.#timer !== undefined) return;
    this.#timer = this.#options.clock.setTimeout(this.#recheck, RECHECK_MS);
  }

  /** Fresh sessions let in SETTLE_MS ago or more stop counting (oldest first). */
  #forgetSettled(): void {
    if (this.#fresh.size === 0) return;
    const before = this.#options.clock.now() - SETTLE_MS;
    for (const [session, since] of this.#fresh) {
      if (since > before) break;
      this.#fresh.delete(session);
    }
  }
}
