/**
 * The in-memory pub/sub adapter: one process, no backend. What is published
 * through `POST /publish` or `shark.publish()` reaches the subscribers of this
 * engine only.
 *
 * @module
 */
import type { PubSub, PubSubListener } from "../src/pubsub.ts";

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
    if (this.#topics.has(topic)) this.#listener?.message(topic, payload);
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.#listener = undefined;
    this.#topics.clear();
    return Promise.resolve();
  }
}
