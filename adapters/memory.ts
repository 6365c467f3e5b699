/**
 * The in-memory pub/sub adapter: one process, no backend. What is published
 * through `POST /publish` or `shark.publish()` reaches the subscribers of this
 * engine only. Topic history (SPEC section 10) and presence (SPEC section
 * 12) are kept in the process too, and start over (history with new epochs)
 * when the process does.
 *
 * @module
 */
import type { PubSub, PubSubListener } from "../src/pubsub/pubsub.ts";
import { MemoryHistory } from "./memory_history.ts";
import { MemoryPresence } from "./memory_presence.ts";

/**
 * Pub/sub inside one isolate.
 *
 * @example
 * ```ts
 * import { MemoryPubSub, Shark } from "../mod.ts";
 * const shark = new Shark({}, { pubsub: new MemoryPubSub() });
 * ```
 */
export class MemoryPubSub implements PubSub {
  readonly name = "memory";
  readonly #topics = new Set<string>();
  #listener: PubSubListener | undefined;
  /** The in-process history of topics of services with `history`. */
  readonly history: MemoryHistory = new MemoryHistory((topic, payload) =>
    this.#deliver(topic, payload)
  );
  /** The in-process members of topics of services with `presence`. */
  readonly presence: MemoryPresence = new MemoryPresence((topic, payload) =>
    this.#deliver(topic, payload)
  );

  get healthy(): boolean {
    return this.#listener !== undefined;
  }

  start(listener: PubSubListener): Promise<void> {
    this.#listener = listener;
    return Promise.resolve();
  }

  subscribe(topic: string): Promise<void> {
    this.#topics.add(topic);
    return Promise.resolve();
  }

  unsubscribe(topic: string): Promise<void> {
    this.#topics.delete(topic);
    return Promise.resolve();
  }

  publish(topic: string, payload: string): Promise<void> {
    this.#deliver(topic, payload);
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.#listener = undefined;
    this.#topics.clear();
    return Promise.resolve();
  }

  #deliver(topic: string, payload: string): void {
    if (this.#topics.has(topic)) this.#listener?.message(topic, payload);
  }
}
