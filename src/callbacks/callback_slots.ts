/**
 * The limit on service callbacks in flight at once to one origin
 * (`http.max_concurrent`, SPEC sections 2 and 8): a mass close (pub/sub loss,
 * shutdown, a load balancer draining a node) must not open sessions ×
 * subscriptions × 2 connections at once, which would run the process out of
 * file descriptors, and with them accepts and Redis reconnects.
 *
 * Guarantees:
 * - **no deadlock**: a slot is held for one try of one callback only, and
 *   every try ends within `http.timeout` (its timer aborts the request and
 *   the reading of its reply); waits between tries hold no slot, and no
 *   holder ever waits for another slot;
 * - **order**: slots go to waiters first come, first served, and no callback
 *   takes a free slot while another waits for one, so the callbacks a
 *   session makes one after the other reach the service in that order;
 * - **the common path costs a comparison**: a free slot is taken
 *   synchronously, with no promise;
 * - a wait whose signal aborts (its session closed) leaves the line at once,
 *   and so does every wait when the slots are closed (Shark shutting down);
 *   a wait listens to its caller's signal alone, so that a line of thousands
 *   (a reconnect storm) composes no signals.
 *
 * @module
 */
import type { Metrics } from "../metrics/metrics.ts";

/** One callback waiting for a slot. */
interface Waiter {
  readonly grant: (granted: boolean) => void;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
}

/** Waiters already served are cut off the front of the line once there are this many. */
const COMPACT_AFTER = 1024;

/**
 * The slots of one origin.
 *
 * @example
 * ```ts
 * const slots = new Slots(64, metrics);
 * if (slots.tryTake() || await slots.wait(signal)) {
 *   try {
 *     await fetch(url, { method: "POST", body });
 *   } finally {
 *     slots.release();
 *   }
 * }
 * ```
 */
export class Slots {
  #free: number;
  /** The line from `#head` on; a waiter that gave up leaves a hole. */
  #line: (Waiter | undefined)[] = [];
  #head = 0;
  /** Places cut off the front of the line so far: a waiter at place `p` is at `#line[p - #cut]`. */
  #cut = 0;
  #waiting = 0;
  #closed = false;
  readonly #metrics: Metrics;

  /** @param limit slots, at least 1. */
  constructor(limit: number, metrics: Metrics) {
    this.#free = limit;
    this.#metrics = metrics;
  }

  /** Takes a slot if one is free and nobody waits for one. */
  tryTake(): boolean {
    if (this.#free === 0 || this.#waiting > 0) return false;
    this.#free--;
    return true;
  }

  /**
   * Waits in line for a slot: resolves `true` once one is handed over (the
   * caller then holds it), `false` when `signal` aborted or the slots were
   * closed first.
   */
  wait(signal?: AbortSignal): Promise<boolean> {
    if (signal?.aborted || this.#closed) return Promise.resolve(false);
    if (this.tryTake()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const place = this.#cut + this.#line.length;
      const waiter: Waiter = {
        grant: resolve,
        signal,
        onAbort: () => {
          if (this.#line[place - this.#cut] !== waiter) return;
          this.#line[place - this.#cut] = undefined;
          this.#left();
          resolve(false);
        },
      };
      this.#line.push(waiter);
      this.#waiting++;
      this.#metrics.callbacksQueued++;
      signal?.addEventListener("abort", waiter.onAbort, { once: true });
    });
  }

  /** Sends every waiter away with `false`, now and from now on (shutdown). */
  close(): void {
    this.#closed = true;
    const waiters = this.#line.slice(this.#head);
    this.#cut += this.#line.length;
    this.#line = [];
    this.#head = 0;
    for (const waiter of waiters) {
      if (!waiter) continue;
      this.#waiting--;
      this.#metrics.callbacksQueued--;
      waiter.signal?.removeEventListener("abort", waiter.onAbort);
      waiter.grant(false);
    }
  }

  /** Gives a slot back: to the first waiter in line, else to the free ones. */
  release(): void {
    while (this.#head < this.#line.length) {
      const waiter = this.#line[this.#head];
      this.#line[this.#head++] = undefined;
      if (!waiter) continue;
      this.#left();
      waiter.signal?.removeEventListener("abort", waiter.onAbort);
      waiter.grant(true);
      return;
    }
    this.#free++;
  }

  /** A waiter left the line, served or given up: the line is trimmed. */
  #left(): void {
    this.#waiting--;
    this.#metrics.callbacksQueued--;
    const cut = this.#waiting === 0
      ? this.#line.length
      : this.#head > COMPACT_AFTER && this.#head * 2 > this.#line.length
      ? this.#head
      : 0;
    if (cut === 0) return;
    this.#cut += cut;
    this.#line = this.#line.slice(cut);
    this.#head = 0;
  }
}
