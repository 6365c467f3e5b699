/**
 * What every connection of the Redis adapter is made of: a client built the
 * one way the adapter wants it, a bounded wait, and the text of a Redis
 * error as logs and `health(false)` reasons show it.
 *
 * @module
 */
import { createClient, ErrorReply } from "@redis/client";
import { PublishOutcomeUnknown } from "../src/pubsub/pubsub.ts";
import type { Clock } from "../src/clock.ts";

/**
 * Bounds connecting and resubscribing: a server that accepts the TCP
 * connection but does not answer must not hold start-up or a reconnect forever.
 */
export const CONNECT_TIMEOUT_MS = 5000;

/**
 * RESP2 works with every Redis version SocketShark users run (RESP3 needs
 * HELLO, Redis 6+), and the client answers PING on a subscribed RESP2
 * connection. The client's own reconnect is off: a lost connection is
 * replaced by a fresh client, so no stale queue or subscription state
 * survives a loss, and every step of the recovery is ours to bound.
 */
export function newClient(url: string) {
  return createClient({
    url,
    RESP: 2,
    disableOfflineQueue: true,
    socket: { connectTimeout: CONNECT_TIMEOUT_MS, reconnectStrategy: false },
  });
}

/** One connection to a Redis server, as {@link newClient} makes it. */
export type RedisClient = ReturnType<typeof newClient>;

/** The reason in a Redis client's error (every reason of a failed multi-address connect). */
export function errorText(error: unknown): string {
  if (error instanceof AggregateError && !error.message) {
    return error.errors.map(errorText).join("; ") || "connection failed";
  }
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}

/** Settles as `promise`, or rejects with `message` once `ms` have passed on `clock`. */
export function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  message: string,
  clock: Clock,
): Promise<T> {
  let timer: unknown;
  const expired = new Promise<never>((_, reject) => {
    timer = clock.setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clock.clearTimeout(timer));
}

/**
 * Rethrows the failure of a command that was sent: a Redis error reply says
 * it did not run; anything else (the connection lost first) leaves it unknown.
 */
export function outcome(error: unknown): never {
  if (error instanceof ErrorReply) throw error;
  throw new PublishOutcomeUnknown(errorText(error));
}
