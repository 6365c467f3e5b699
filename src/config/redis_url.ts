/**
 * What Shark accepts as a Redis URL (SPEC section 6, `pubsub.redis.url`):
 * checked by the configuration and again by the Redis adapter, which may be
 * given options that never went through the configuration.
 *
 * @module
 */

/**
 * Why `text` is not a Redis URL the client can connect with, or `undefined`.
 * The client itself would only report these as a bare `TypeError`.
 *
 * @example
 * ```ts
 * redisUrlProblem("http://127.0.0.1:6379"); // "expected a redis:// or rediss:// URL"
 * redisUrlProblem("redis://127.0.0.1:6379/books"); // 'the database "books" is not a number'
 * ```
 */
export function redisUrlProblem(text: string): string | undefined {
  const url = URL.parse(text);
  if (!url || (url.protocol !== "redis:" && url.protocol !== "rediss:")) {
    return "expected a redis:// or rediss:// URL";
  }
  const database = url.pathname.slice(1);
  if (database !== "" && !/^\d+$/.test(database)) {
    return `the database ${JSON.stringify(database)} is not a number`;
  }
}
