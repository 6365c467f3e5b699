/**
 * The Redis part of the `shark.json` contract: `pubsub.redis` (a single
 * Redis at `url`, or a Redis Cluster reached through its `cluster` seeds,
 * SPEC section 14) and `pubsub.redis_alt` (a second single Redis, SPEC
 * section 6).
 *
 * @module
 */
import { z } from "zod";
import { checkRedisUrl, type EnvLookup, positiveSeconds, secret } from "./fields.ts";

/** The URL `pubsub.redis.url` defaults to. */
const DEFAULT_URL = "redis://127.0.0.1:6379/0";

/** A seed also must name database 0: Redis Cluster has no other. */
function checkSeedUrl(text: string): string | undefined {
  const problem = checkRedisUrl(text);
  if (problem) return problem;
  const database = new URL(text).pathname.slice(1);
  if (database !== "" && database !== "0") {
    return `a Redis Cluster has database 0 only, got database ${database}`;
  }
}

/** `url`, `ping_interval` and `ping_timeout`, shared by `redis` and `redis_alt`. */
export function redisServerSchema(env: EnvLookup) {
  return z.strictObject({
    url: secret(env, checkRedisUrl).default(DEFAULT_URL)
      .describe("redis:// or rediss:// URL, with optional credentials and database number."),
    ping_interval: positiveSeconds.default(10).describe("Seconds between health pings."),
    ping_timeout: positiveSeconds.default(5)
      .describe("Seconds a ping may take before the server counts as lost."),
  });
}

/**
 * `pubsub.redis`: the single Redis's keys, plus `cluster` and `sharded`.
 * With `cluster`, the validated `url` is `""`: no single server is meant,
 * and a configuration loaded once (and copied to a worker) loads again.
 */
export function redisSchema(env: EnvLookup) {
  const schema = redisServerSchema(env).extend({
    cluster: z.array(secret(env, checkSeedUrl)).min(1, "must list at least one seed URL")
      .nullable().default(null).describe(
        "Seed URLs of a Redis Cluster (the rest is discovered); exclusive with url. null: the single Redis at url.",
      ),
    sharded: z.boolean().default(false).describe(
      "Whether topics travel by SSUBSCRIBE/SPUBLISH through their slot's shard only; publishers must SPUBLISH.",
    ),
  }).transform((redis) => redis.cluster === null ? redis : { ...redis, url: "" });
  return z.preprocess((raw, ctx) => {
    if (typeof raw !== "object" || raw === null || !("cluster" in raw)) return raw;
    const { url, cluster } = raw as Record<string, unknown>;
    if (cluster === null || cluster === undefined || url === undefined) return raw;
    if (url === "") {
      const { url: _, ...rest } = raw as Record<string, unknown>;
      return rest;
    }
    ctx.issues.push({
      code: "custom",
      input: raw,
      message:
        "url and cluster are both written: write url for a single Redis or cluster for a Redis Cluster, not both",
    });
    return raw;
  }, schema);
}
