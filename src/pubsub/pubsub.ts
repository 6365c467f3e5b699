/**
 * The one small interface every pub/sub backend implements (SPEC section 9),
 * with topic history (SPEC section 10, see `history.ts`) and presence (SPEC
 * section 12, see `../presence/store.ts`) as optional capabilities.
 *
 * @module
 */
import type { History } from "./history.ts";
import type { PresenceStore } from "../presence/store.ts";

/**
 * A publish was sent but its outcome is unknown (the connection was lost
 * before the reply): it may or may not have gone out. `POST /publish`
 * answers 504 for it, where 503 always means nothing was published (SPEC
 * section 14).
 */
export class PublishOutcomeUnknown extends Error {
  override readonly name = "PublishOutcomeUnknown";
}

/** What an adapter reports to the engine that started it. */
export interface PubSubListener {
  /**
   * A payload (envelope JSON text) arrived for `topic`, a subscription name
   * (`SERVICE.TOPIC`) with any channel prefix already removed.
   */
  message(topic: string, payload: string): void;
  /**
   * The backend was lost (`healthy: false`, with a reason) or is back and
   * every subscribed topic is subscribed again (`healthy: true`).
   */
  health(healthy: boolean, reason?: string): void;
  /**
   * Part of the backend was lost (a Redis Cluster shard, SPEC section 14):
   * payloads of `topics` may be missed from now on, while the other topics
   * are served. Adapters with one backend never call it.
   */
  lost?(topics: readonly string[], reason: string): void;
  /**
   * `topics` were subscribed again (their shard is back, their slot moved):
   * payloads published meanwhile may have been missed, and history topics
   * should be caught up from their history.
   */
  resubscribed?(topics: readonly string[]): void;
}

/**
 * A pub/sub backend.
 *
 * Guarantees an adapter gives the engine:
 * - at-most-once delivery of each published payload to each process that has
 *   subscribed the topic, in publish order per topic;
 * - `subscribe` resolves only once payloads published afterwards will be
 *   received (the engine's no-gap guarantee relies on it);
 * - `subscribe` and `unsubscribe` calls take effect in call order;
 * - a lost backend is reported through `health(false)` and never as a
 *   silent stall.
 *
 * @example
 * ```ts
 * const pubsub: PubSub = new MemoryPubSub();
 * await pubsub.start({ message: (topic, payload) => console.log(topic, payload), health() {} });
 * await pubsub.subscribe("books.book_1");
 * await pubsub.publish("books.book_1", '{"subscription":"books.book_1","data":{}}');
 * ```
 */
export interface PubSub {
  /** A short name for logs and `/healthz` (`memory`, `redis`, ...). */
  readonly name: string;
  /** Whether the backend is connected and subscriptions are live. */
  readonly healthy: boolean;
  /** Connects; rejects with a clear message when the backend is unreachable. */
  start(listener: PubSubListener): Promise<void>;
  /** Starts receiving payloads published to `topic`. */
  subscribe(topic: string): Promise<void>;
  /** Stops receiving payloads for `topic`. */
  unsubscribe(topic: string): Promise<void>;
  /** Publishes a payload to every process subscribed to `topic`. */
  publish(topic: string, payload: string): Promise<void>;
  /**
   * The adapter's per-topic history, when it can keep one; services with
   * `history` need it. It publishes through this adapter's channels.
   */
  readonly history?: History;
  /**
   * The adapter's presence store, when it can keep one; services with
   * `presence` need it. Its joins and leaves travel on this adapter's channels.
   */
  readonly presence?: PresenceStore;
  /** Disconnects and releases every resource. */
  close(): Promise<void>;
}
