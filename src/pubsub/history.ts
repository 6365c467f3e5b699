/**
 * Topic history and positions (SPEC section 10): the seam between the engine
 * and the adapters that can keep a short history per topic.
 *
 * How it fits {@link PubSub} without breaking adapters that keep none: an
 * adapter that can keep history exposes a {@link History} as its optional
 * `history` property (memory and Redis do; BroadcastChannel does not, since
 * its isolates share no store). The engine refuses to start a service with
 * `history` on an adapter without one.
 *
 * A position travels inside the payload: {@link History.publish} assigns it,
 * stores the envelope and publishes it through the adapter's ordinary
 * channel in one atomic step, with `"offset"` and `"epoch"` appended as the
 * envelope's last keys ({@link withPosition}). So every node and isolate
 * receives the same position for the same envelope through the same
 * `PubSubListener.message` as any other payload, a subscriber still on
 * SocketShark sees two extra top-level keys and nothing else, and a plain
 * `PUBLISH` by a SocketShark publisher simply has no position
 * ({@link positionOf} returns `undefined`).
 *
 * @module
 */
import type { JsonObject } from "../json.ts";

/** The per-service `history` configuration an adapter keeps a topic's history by. */
export interface HistoryOptions {
  /** Envelopes kept per topic (1–10000); older ones are dropped. */
  readonly size: number;
  /** Seconds a topic's history lives after its last publish (> 0). */
  readonly ttl: number;
}

/** Where an envelope stands in its topic's history. */
export interface Position {
  /** 1 for the first envelope of an epoch, +1 for each next; 0 before the first. */
  readonly offset: number;
  /** Names one unbroken history of the topic; replaced whenever the history is lost. */
  readonly epoch: string;
}

/** What {@link History.recover} found. */
export interface Recovery {
  /**
   * The topic's position when the history was read (its epoch created now
   * when the topic had none).
   */
  readonly position: Position;
  /**
   * The positioned payloads after the requested offset, in offset order, up
   * to {@link position}; `undefined` when they cannot all be given (another
   * epoch, an offset older than the history, or one the history never had).
   */
  readonly payloads: readonly string[] | undefined;
}

/**
 * A per-topic history kept by a pub/sub adapter.
 *
 * Guarantees an adapter gives the engine:
 * - {@link publish} assigns the topic's next position, stores the positioned
 *   payload and publishes it, as one step that no other publish of the same
 *   topic interleaves with, on any node: positions are gapless and every
 *   process receives them in offset order;
 * - {@link recover} reads the position and the stored payloads as one
 *   consistent snapshot;
 * - {@link position} and {@link recover} create the topic's epoch when it has
 *   none, and do not extend its `ttl` (only a publish does);
 * - a history that was lost (expired, restarted, evicted) gets a new epoch,
 *   so that a position from the old one is never taken for a position in the
 *   new one.
 *
 * @example
 * ```ts
 * const history = new MemoryPubSub().history;
 * const options = { size: 100, ttl: 300 };
 * const { offset, epoch } = await history.publish(
 *   "books.book_1",
 *   '{"subscription":"books.book_1","data":{}}',
 *   options,
 * );
 * const { payloads } = await history.recover("books.book_1", { offset: offset - 1, epoch }, options);
 * ```
 */
export interface History {
  /**
   * Readies the store (Redis: loads the script). The engine calls it at start
   * when a service has history; a rejection fails the start.
   */
  prepare(): Promise<void>;
  /**
   * Publishes an envelope (JSON object text) to `topic` with the next
   * position; resolves with that position.
   */
  publish(topic: string, payload: string, options: HistoryOptions): Promise<Position>;
  /** The topic's current position. */
  position(topic: string, options: HistoryOptions): Promise<Position>;
  /** The topic's current position and the payloads published after `from`. */
  recover(topic: string, from: Position, options: HistoryOptions): Promise<Recovery>;
}

/**
 * Appends a position to an envelope's JSON text as its last keys, so that
 * they win over keys of the same name a publisher may have set.
 *
 * @param payload the JSON text of an envelope: an object with at least one key.
 *
 * @example
 * ```ts
 * withPosition('{"subscription":"a.b","data":1}', { offset: 3, epoch: "x" });
 * // '{"subscription":"a.b","data":1,"offset":3,"epoch":"x"}'
 * ```
 */
export function withPosition(payload: string, position: Position): string {
  const end = payload.lastIndexOf("}");
  return `${payload.slice(0, end)},"offset":${position.offset},"epoch":${
    JSON.stringify(position.epoch)
  }}`;
}

/**
 * The position a received envelope carries, or `undefined` when it carries
 * none (a plain `PUBLISH`, or keys that are not a position).
 */
export function positionOf(envelope: JsonObject): Position | undefined {
  const { offset, epoch } = envelope;
  if (typeof epoch !== "string" || epoch === "") return undefined;
  if (typeof offset !== "number" || !Number.isSafeInteger(offset) || offset < 1) return undefined;
  return { offset, epoch };
}

/**
 * A subscribe request's `recover` value as a position, or `undefined` when it
 * is not an object with a non-negative integer `offset` and a string `epoch`.
 */
export function recoverPosition(value: unknown): Position | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const { offset, epoch } = value as JsonObject;
  if (typeof epoch !== "string") return undefined;
  if (typeof offset !== "number" || !Number.isInteger(offset) || offset < 0) return undefined;
  return { offset, epoch };
}
