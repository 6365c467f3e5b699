/**
 * Admission by turns: the work of clients coming and going (handshakes,
 * client events, a subscribe's reply and replay) runs in turns of the event
 * loop of at most about {@link PACER_BUDGET_MS} each, in arrival order, so
 * that between them the loop reads pub/sub and writes deliveries to the
 * clients already connected. A reconnect storm is served at the same rate,
 * every client in its turn, none refused; without turns, thousands of
 * handshakes or subscribe replies arriving together ran as one task of a
 * hundred milliseconds and more, and every delivery waited behind it
 * (`deno task bench storm`, the bystander's latency).
 *
 * @module
 */
import { type Clock, REAL_CLOCK } from "../clock.ts";

/** The work the pacer runs before it lets the event loop turn, in milliseconds. */
export const PACER_BUDGET_MS = 5;

/** Run entries are cut off the front of the queue once there are this many. */
const COMPACT_AFTER = 1024;

/** Runs a task in a later turn of the event loop, after its pending I/O. */
export type Turn = (task: () => void) => void;

/**
 * `setImmediate` where the runtime has one (Deno, Node, Bun: the task runs
 * right after the loop's next poll for I/O, ~6 µs a hop in Deno), else a
 * 0 ms timer: a chain of those waits ~2.5 ms a hop in Deno (timers' 1 ms
 * minimum and nesting clamp), which left the server idle between turns in
 * a storm (`deno task bench storm`: server CPU 40%, clients back in 4.9 s
 * instead of 3.1 s).
 */
export const NEXT_TURN: Turn = (() => {
  const immediate = (globalThis as { setImmediate?: (task: () => void) => unknown }).setImmediate;
  return immediate ? (task) => void immediate(task) : (task) => void setTimeout(task, 0);
})();

/** Options of a {@link Pacer}; tests pass a fake clock and their own turns. */
export interface PacerOptions {
  /** What the budget is measured by; the runtime's by default. */
  readonly clock?: Clock;
  /** The work before a turn, in milliseconds; {@link PACER_BUDGET_MS} by default. */
  readonly budgetMs?: number;
  /** How the pacer waits for a turn; {@link NEXT_TURN} by default. */
  readonly turn?: Turn;
}

/**
 * Runs tasks at once while the current turn's budget lasts, and queues them
 * for later turns ({@link NEXT_TURN}) once it is spent.
 *
 * Guarantees:
 * - tasks run in the order they were given, each once, never inside another;
 * - a task runs at once when none waits and the budget is not spent;
 * - the budget is the time spent in tasks since the pacer last waited for a
 *   turn, forgotten when the loop was idle for a budget's length;
 * - only a task's synchronous part is timed: what it does after an `await`
 *   runs in other tasks of the loop, unpaced.
 *
 * @example
 * ```ts
 * const pacer = new Pacer();
 * const reply = await pacer.run(() => events.handle(session, frame));
 * ```
 */
export class Pacer {
  readonly #clock: Clock;
  readonly #budget: number;
  readonly #turn: Turn;
  #queue: ((() => void) | undefined)[] = [];
  #head = 0;
  #spent = 0;
  #lastEnd = -Infinity;
  #yielding = false;
  readonly #drain = () => this.#runQueued();

  constructor(options: PacerOptions = {}) {
    this.#clock = options.clock ?? REAL_CLOCK;
    this.#budget = options.budgetMs ?? PACER_BUDGET_MS;
    this.#turn = options.turn ?? NEXT_TURN;
  }

  /** Tasks waiting for a later turn. */
  get waiting(): number {
    return this.#queue.length - this.#head;
  }

  /** Runs `task` now or in a later turn; resolves with what it resolves with. */
  run<T>(task: () => Promise<T>): Promise<T> {
    if (!this.#yielding && this.#head === this.#queue.length) return this.#timed(task);
    return new Promise<T>((resolve, reject) => {
      this.#queue.push(() => this.#timed(task).then(resolve, reject));
    });
  }

  #timed<T>(task: () => Promise<T>): Promise<T> {
    const start = this.#clock.now();
    if (start - this.#lastEnd >= this.#budget) this.#spent = 0;
    try {
      return task();
    } catch (error) {
      return Promise.reject(error);
    } finally {
      const end = this.#clock.now();
      this.#spent += end - start;
      this.#lastEnd = end;
      if (this.#spent >= this.#budget && !this.#yielding) {
        this.#yielding = true;
        this.#turn(this.#drain);
      }
    }
  }

  #runQueued(): void {
    this.#yielding = false;
    this.#spent = 0;
    const queue = this.#queue;
    while (this.#head < queue.length && !this.#yielding) {
      const job = queue[this.#head]!;
      queue[this.#head++] = undefined;
      job();
    }
    if (this.#head === queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head > COMPACT_AFTER) {
      this.#queue = queue.slice(this.#head);
      this.#head = 0;
    }
  }
}
