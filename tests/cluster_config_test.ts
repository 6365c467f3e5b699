/**
 * SPEC section 14, configuration: `pubsub.redis.cluster` (seed URLs,
 * exclusive with `url` and with `redis_alt`, database 0 only) and
 * `pubsub.redis.sharded`.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../mod.ts";
import { problems } from "./helpers/config.ts";

Deno.test("cluster defaults to null and sharded to false", () => {
  const { redis } = loadConfig({}).pubsub;
  assert.equal(redis.cluster, null);
  assert.equal(redis.sharded, false);
  assert.equal(redis.url, "redis://127.0.0.1:6379/0");
});

Deno.test("cluster seeds are kept, from the environment too; the unused url is empty", () => {
  const config = loadConfig({
    pubsub: {
      adapter: "redis",
      redis: { cluster: ["redis://10.0.0.1:7000", { env: "SEED" }], sharded: true },
    },
  }, (name) => name === "SEED" ? "redis://10.0.0.2:7000/0" : undefined);
  assert.deepEqual(config.pubsub.redis.cluster, [
    "redis://10.0.0.1:7000",
    "redis://10.0.0.2:7000/0",
  ]);
  assert.equal(config.pubsub.redis.sharded, true);
  assert.equal(config.pubsub.redis.url, "");
});

Deno.test("a loaded cluster configuration, copied (as to a worker), loads again as it is", () => {
  const config = loadConfig({ pubsub: { adapter: "redis", redis: { cluster: ["redis://a:1"] } } });
  assert.deepEqual(loadConfig(structuredClone(config)), config);
});

Deno.test("url and cluster both written is a config error naming both keys", () => {
  const [problem, ...rest] = problems({
    pubsub: { redis: { url: "redis://10.0.0.1:6379/0", cluster: ["redis://10.0.0.1:7000"] } },
  });
  assert.deepEqual(rest, []);
  assert.match(problem, /^pubsub\.redis: /);
  assert.match(problem, /\burl\b/);
  assert.match(problem, /\bcluster\b/);
});

Deno.test("an empty seed list or a seed with a database other than 0 is a config error", () => {
  assert.match(problems({ pubsub: { redis: { cluster: [] } } })[0], /^pubsub\.redis\.cluster: /);
  assert.deepEqual(
    problems({ pubsub: { redis: { cluster: ["redis://a:1/0", "redis://b:2/3"] } } }),
    [
      "pubsub.redis.cluster.1: a Redis Cluster has database 0 only, got database 3",
    ],
  );
  assert.match(
    problems({ pubsub: { redis: { cluster: ["http://a:1"] } } })[0],
    /^pubsub\.redis\.cluster\.0: expected a redis:\/\/ or rediss:\/\/ URL/,
  );
});

Deno.test("redis_alt with cluster is a config error naming both keys", () => {
  const [problem] = problems({
    pubsub: {
      adapter: "redis",
      redis: { cluster: ["redis://10.0.0.1:7000"] },
      redis_alt: { url: "redis://10.0.0.2:6379/0" },
    },
  });
  assert.match(problem, /^pubsub\.redis_alt: /);
  assert.match(problem, /redis\.cluster/);
});
