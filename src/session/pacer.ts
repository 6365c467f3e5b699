/**
 * The pacer (measured by `deno task bench storm`): the work
 * of clients coming and going (a handshake, a client event, what follows a
 * service's callback answer or a pub/sub subscribe) runs in slices of at
 * most about {@link PACER_SLICE_MS}, in arrival order, and between two
 * slices the event loop turns: it reads pub/sub and writes deliveries to the
 * clients already connected before the next slice. A reconnect storm is
 * served at the same rate, every client in its turn, none refused; without
 * slices the runtime ran every ready handshake and event of a storm in one
 * go (hundreds of milliseconds), and each delivery waited behind them.
 *
 * Why a timer between slices: in Deno a chain of `setImmediate` or
 * `MessageChannel` hops starves I/O (a socket read waited 120–300 ms, or
 * seconds, behind a chain of 5 ms tasks), while a 0 ms timer lets every
 * ready read in first (p99 6 ms); measured with a loopback probe socket.
 * The timer costs about 2 ms of idle only when nothing else is ready.
 *
 * Quiet, pacing costs one timer per slice and a microtask per turn. (Who may
 * connect at all is `src/http/admission.ts`; this is when their work runs.)
 *
 * @module
 */

/** The work admitted before the event loop must turn, in milliseconds. */
export const PACER_SLICE_MS = 5;

/** Waiting entries are cut off the front of the queue once there are this many. */
const COMPACT_AFTER = 1024;

/** How the pacer reads time and waits for the event loop to turn; tests pass fakes. */
export interface PacerTiming {
  /** A monotonic time in milliseconds. */
  now(): number;
  /** Runs `task` after the event loop has turned (its pending I/O served). */
  afterTurn(task: () => void): void;
}

/** The runtime's monotonic time and a 0 ms timer. */
export const LOOP_TIMING: PacerTiming = {
  now: () => performance.now(),
  afterTurn: (task) => void setTimeout(task, 0),
};

/** Options of {@link Pacer}. */
export interface PacerOptions {
  readonly timing?: PacerTiming;
  /** {@link PACER_SLICE_MS} by default. */
  readonly sliceMs?: number;
}

const ADMITTED: Promise<void> = Promise.resolve();

/**
 * Admits work in slices: `await pacer.turn()` before a piece of work
 * that clients coming and going cause. Each one waiting is let go after the
 * one before it has run up to its next wait, while the slice has time
 * left: the time is read when the work starts, so that a thousand turns
 * taken in the same instant (a chunk of pub/sub replies) are not all
 * admitted before any of their work ran.
 *
 * @example
 * ```ts
 * import { Pacer } from "./pacer.ts";
 *
 * const pacer = new Pacer();
 * await pacer.turn(); // in a microtask: nothing else waits
 * ```
 */
export class Pacer {
  readonly #timing: PacerTiming;
  readonly #sliceMs: number;
  #waiting: ((() => void) | undefined)[] = [];
  #head = 0;
  /** When the current slice began; `undefined` once the loop has turned since. */
  #sliceStart: number | undefined;
  /** Whether a release is queued as a microtask. */
  #releasing = false;
  #closed = false;
  readonly #endSlice = () => this.#turned();
  readonly #releaseNext = () => this.#release();

  constructor(options: PacerOptions = {}) {
    this.#timing = options.timing ?? LOOP_TIMING;
    this.#sliceMs = options.sliceMs ?? PACER_SLICE_MS;
  }

  /** Pieces of work waiting for their turn. */
  get waiting(): number {
    return this.#waiting.length - this.#head;
  }

  /**
   * Resolves when the caller may go on: in a microtask while the current
   * slice has time left, else in a later slice; always in call order.
   */
  turn(): Promise<void> {
    if (this.#closed) return ADMITTED;
    const turn = new Promise<void>((resolve) => this.#waiting.push(resolve));
    if (this.#sliceStart === undefined) this.#startSlice();
    if (!this.#releasing) {
      this.#releasing = true;
      queueMicrotask(this.#releaseNext);
    }
    return turn;
  }

  /** Lets everything waiting go on, and admits everything from now on (shutdown). */
  close(): void {
    this.#closed = true;
    while (this.waiting > 0) this.#next()();
  }

  #startSlice(): void {
    this.#sliceStart = this.#timing.now();
    this.#timing.afterTurn(this.#endSlice);
  }

  /** The event loop has turned: a new slice starts with the first one waiting. */
  #turned(): void {
    this.#sliceStart = undefined;
    if (this.waiting === 0 || this.#closed) return;
    this.#startSlice();
    if (!this.#releasing) {
      this.#releasing = true;
      this.#release();
    }
  }

  /**
   * Lets the next one waiting go on and comes back after it (its
   * continuation is queued before this microtask) while the slice has time
   * left; else the slice's timer takes over.
   */
  #release(): void {
    if (
      this.waiting === 0 || this.#sliceStart === undefined ||
      this.#timing.now() - this.#sliceStart >= this.#sliceMs
    ) {
      this.#releasing = false;
      return;
    }
    this.#next()();
    queueMicrotask(this.#releaseNext);
  }

  #next(): () => void {
    const resolve = this.#waiting[this.#head]!;
    this.#waiting[this.#head++] = undefined;
    if (this.#head === this.#waiting.length) {
      this.#waiting = [];
      this.#head = 0;
    } else if (this.#head > COMPACT_AFTER) {
      this.#waiting = this.#waiting.slice(this.#head);
      this.#head = 0;
    }
    return resolve;
  }
}
