/**
 * The memory adapter's topic history (SPEC section 10): a capped ring of
 * positioned payloads per topic, in this process only.
 *
 * Memory stays bounded: a topic keeps at most `size` payloads, and a topic
 * whose `ttl` has passed since its last publish is forgotten. Expired topics
 * are swept at every call, from the front of one list per `ttl` value kept
 * in the order of each topic's last publish, so no timer runs and a sweep
 * costs nothing while nothing has expired; a process that stops publishing
 * keeps what it had until the next call.
 *
 * @module
 */
import {
  type History,
  type HistoryOptions,
  type Position,
  type Recovery,
  withPosition,
} from "../src/pubsub/history.ts";

/** Settings of a {@link MemoryHistory}; tests inject a clock and epochs. */
export interface MemoryHistorySettings {
  /** A monotonic clock in milliseconds. Defaults to `performance.now()`. */
  readonly now?: () => number;
  /** Names a new epoch. Defaults to 12 random base64url characters. */
  readonly newEpoch?: () => string;
}

interface TopicHistory {
  readonly name: string;
  readonly epoch: string;
  /** The offset of the last payload published; 0 before the first. */
  offset: number;
  /** Payload of offset `o` at index `(o - 1) % size`. */
  readonly ring: string[];
  /** The `size` the topic was created with. */
  readonly size: number;
  readonly ttlMs: number;
  expiresAt: number;
}

function randomEpoch(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_");
}

/**
 * Topic history inside one process; `deliver` hands a positioned payload to
 * the adapter's subscribers synchronously, so assigning, storing and
 * publishing form one step.
 *
 * @example
 * ```ts
 * import { MemoryHistory } from "./memory_history.ts";
 *
 * const history = new MemoryHistory((topic, payload) => console.log(topic, payload));
 * await history.publish("books.b1", '{"subscription":"books.b1","data":1}', { size: 10, ttl: 60 });
 * ```
 */
export class MemoryHistory implements History {
  readonly #deliver: (topic: string, payload: string) => void;
  readonly #now: () => number;
  readonly #newEpoch: () => string;
  readonly #topics = new Map<string, TopicHistory>();
  /** Per `ttl`: its topics, in the order of their last publish (so of their expiry). */
  readonly #byTtl = new Map<number, Map<string, TopicHistory>>();

  constructor(
    deliver: (topic: string, payload: string) => void,
    settings: MemoryHistorySettings = {},
  ) {
    this.#deliver = deliver;
    this.#now = settings.now ?? (() => performance.now());
    this.#newEpoch = settings.newEpoch ?? randomEpoch;
  }

  /** Topics with a history now (expired ones are swept first). */
  get topics(): number {
    this.#sweep(this.#now());
    return this.#topics.size;
  }

  prepare(): Promise<void> {
    return Promise.resolve();
  }

  publish(topic: string, payload: string, options: HistoryOptions): Promise<Position> {
    const now = this.#now();
    const history = this.#current(topic, options, now);
    const position = { offset: ++history.offset, epoch: history.epoch };
    const positioned = withPosition(payload, position);
    history.ring[(position.offset - 1) % history.size] = positioned;
    history.expiresAt = now + history.ttlMs;
    const queue = this.#byTtl.get(history.ttlMs)!;
    queue.delete(topic);
    queue.set(topic, history);
    this.#deliver(topic, positioned);
    return Promise.resolve(position);
  }

  position(topic: string, options: HistoryOptions): Promise<Position> {
    const history = this.#current(topic, options, this.#now());
    return Promise.resolve({ offset: history.offset, epoch: history.epoch });
  }

  recover(topic: string, from: Position, options: HistoryOptions): Promise<Recovery> {
    const history = this.#current(topic, options, this.#now());
    const { offset, epoch, size, ring } = history;
    const missed = offset - from.offset;
    const complete = from.epoch === epoch && missed >= 0 && missed <= size;
    let payloads: string[] | undefined;
    if (complete) {
      payloads = [];
      for (let next = from.offset + 1; next <= offset; next++) {
        payloads.push(ring[(next - 1) % size]);
      }
    }
    return Promise.resolve({ position: { offset, epoch }, payloads });
  }

  /** The topic's history, created with a new epoch when it has none. */
  #current(topic: string, options: HistoryOptions, now: number): TopicHistory {
    this.#sweep(now);
    let history = this.#topics.get(topic);
    if (history) return history;
    const ttlMs = options.ttl * 1000;
    history = {
      name: topic,
      epoch: this.#newEpoch(),
      offset: 0,
      ring: [],
      size: options.size,
      ttlMs,
      expiresAt: now + ttlMs,
    };
    this.#topics.set(topic, history);
    let queue = this.#byTtl.get(ttlMs);
    if (!queue) this.#byTtl.set(ttlMs, queue = new Map());
    queue.set(topic, history);
    return history;
  }

  #sweep(now: number): void {
    for (const [ttlMs, queue] of this.#byTtl) {
      for (const history of queue.values()) {
        if (history.expiresAt > now) break;
        queue.delete(history.name);
        this.#topics.delete(history.name);
      }
      if (queue.size === 0) this.#byTtl.delete(ttlMs);
    }
  }
}
