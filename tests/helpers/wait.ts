/**
 * Waiting with a deadline, for the tests and the benchmarks: a promise
 * within a time, a condition until it holds (polled, or checked again
 * whenever {@link Changes} says something changed), and a queue whose
 * `next()` waits for the next item. Every wait is bounded and names what it
 * waited for when it gives up.
 *
 * @module
 */

/** Resolves after `ms`. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves with `promise`, or rejects naming `what` after `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Tells the waiters of {@link waitUntil} that what they test may have
 * changed (a message arrived, a call was recorded, a log line was read).
 */
export class Changes {
  #version = 0;
  readonly #wakers = new Set<() => void>();

  /** Counts every change: a waiter that saw an older count tests again at once. */
  get version(): number {
    return this.#version;
  }

  /** Wakes every waiter. */
  notify(): void {
    this.#version++;
    for (const wake of this.#wakers) wake();
    this.#wakers.clear();
  }

  /** Resolves at the next change after `seen`, or after `ms`, whichever comes first. */
  after(seen: number, ms: number): Promise<void> {
    if (this.#version !== seen) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#wakers.add(wake);
    });
  }
}

/** What {@link waitUntil} resolves with: a value that is not falsy. */
export type Truthy<T> = Exclude<T, false | 0 | "" | null | undefined>;

/** How often {@link waitUntil} tests a condition that no {@link Changes} announces. */
const POLL_MS = 25;

/**
 * Resolves with the first truthy value of `test`, tested at once, then on
 * every change of `changes` (or every 25 ms without it); rejects after `ms`
 * naming `what` (a function when the message needs the state at that time).
 */
export async function waitUntil<T>(
  test: () => T | Promise<T>,
  ms: number,
  what: string | (() => string),
  changes?: Changes,
): Promise<Truthy<T>> {
  const deadline = performance.now() + ms;
  for (;;) {
    const seen = changes?.version ?? 0;
    const value = await test();
    if (value) return value as Truthy<T>;
    const left = deadline - performance.now();
    if (left <= 0) {
      throw new Error(`${typeof what === "string" ? what : what()}: not within ${ms} ms`);
    }
    await (changes ? changes.after(seen, left) : delay(Math.min(left, POLL_MS)));
  }
}

/** Items in arrival order; `next()` waits (bounded) for the next one. */
export class Inbox<T> {
  readonly #items: T[] = [];
  readonly #changes = new Changes();
  #closed = false;

  /** Items that arrived and were not taken yet. */
  get size(): number {
    return this.#items.length;
  }

  /** The oldest item not taken yet. */
  peek(): T | undefined {
    return this.#items[0];
  }

  push(item: T): void {
    this.#items.push(item);
    this.#changes.notify();
  }

  /** Nothing more will arrive: a `next()` on an empty inbox fails at once. */
  close(): void {
    this.#closed = true;
    this.#changes.notify();
  }

  /** The oldest item not taken yet; waits up to `timeoutMs` for one. */
  async next(timeoutMs: number): Promise<T> {
    await waitUntil(
      () => {
        if (this.#items.length > 0) return true;
        if (this.#closed) throw new Error("connection closed");
        return false;
      },
      timeoutMs,
      "no message",
      this.#changes,
    );
    return this.#items.shift()!;
  }
}
