/**
 * SPEC section 14 against a real local Redis Cluster (3 primaries, 3
 * replicas; `tests/helpers/redis_cluster.ts`): classic pub/sub with a plain
 * PUBLISH sent to any node, sharded pub/sub through every shard to two Shark
 * processes, history on the cluster, a slot migrated while subscribed, a
 * manual failover and a primary killed. One cluster serves the steps in
 * order (the machine is small); the destructive steps come last.
 *
 * Skipped, with a loud warning, when `redis-server` is not installed.
 */
import assert from "node:assert/strict";
import { RedisClusterPubSub } from "../adapters/redis.ts";
import { loadConfig, type SharkConfigInput } from "../mod.ts";
import { TestClient } from "./helpers/client.ts";
import { SharkProcess } from "./helpers/process.ts";
import { clusterAvailable, RedisCluster } from "./helpers/redis_cluster.ts";
import { FAST_HTTP, TestShark } from "./helpers/shark.ts";
import { tempFile } from "./helpers/temp.ts";
import { waitUntil } from "./helpers/wait.ts";

const ignore = !(await clusterAvailable());
const SECRET = "publish-secret-for-tests";
const PING = { ping_interval: 0.2, ping_timeout: 0.5 };
const PREFIX = "shark:";

function clusterConfig(seeds: string[], sharded: boolean): SharkConfigInput {
  return {
    http: FAST_HTTP,
    publish_api: { secret: SECRET },
    services: {
      books: { require_authentication: false },
      feed: { require_authentication: false, history: { size: 100, ttl: 60 } },
    },
    pubsub: {
      adapter: "redis",
      channel_prefix: PREFIX,
      redis: { cluster: seeds, sharded, ...PING },
    },
  };
}

function startShark(config: SharkConfigInput): Promise<TestShark> {
  return TestShark.start(config, {
    pubsub: new RedisClusterPubSub(loadConfig(config).pubsub),
  });
}

function envelope(subscription: string, data: unknown): string {
  return JSON.stringify({ subscription, data });
}

async function publish(port: number, subscription: string, data: unknown): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${port}/publish`, {
    method: "POST",
    headers: { authorization: `Bearer ${SECRET}`, "content-type": "application/json" },
    body: envelope(subscription, data),
  });
  await response.body?.cancel();
  return response.status;
}

async function healthStatus(port: number): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${port}/healthz`);
  await response.body?.cancel();
  return response.status;
}

/** A topic `books.<n>` for each primary, by the slot its channel hashes to. */
async function topicPerShard(cluster: RedisCluster, service: string): Promise<string[]> {
  const primaries = (await cluster.topology()).filter((node) => node.primary && !node.failed);
  const found = new Map<number, string>();
  for (let n = 0; found.size < primaries.length; n++) {
    const topic = `${service}.${n}`;
    const owner = await cluster.ownerOf(await cluster.keySlot(PREFIX + topic));
    if (!found.has(owner.port)) found.set(owner.port, topic);
  }
  return [...found.values()];
}

Deno.test({ name: "Redis Cluster (SPEC 14)", ignore }, async (t) => {
  await using cluster = await RedisCluster.start();
  const seeds = cluster.urls().slice(0, 2);

  await t.step("no seed answering: the start fails naming the seeds", async () => {
    const config = clusterConfig(["redis://127.0.0.1:1/0", "redis://127.0.0.1:2/0"], false);
    await assert.rejects(
      () => startShark(config),
      /no seed of pubsub\.redis\.cluster answers.*127\.0\.0\.1:1\b.*127\.0\.0\.1:2\b/,
    );
  });

  await t.step(
    "classic: a plain PUBLISH sent to a node that does not own the slot reaches the client",
    async () => {
      await using shark = await startShark(clusterConfig(seeds, false));
      const topics = await topicPerShard(cluster, "books");
      const clients = await Promise.all(topics.map((topic) => shark.subscriber(topic)));
      for (const [index, topic] of topics.entries()) {
        const owner = await cluster.ownerOf(await cluster.keySlot(PREFIX + topic));
        const other = cluster.nodes.find((node) => node.port !== owner.port)!;
        await other.publish(PREFIX + topic, envelope(topic, { index }));
        assert.deepEqual((await clients[index].next()).data, { index });
      }
      assert.equal(await publish(shark.port, topics[1], "via /publish"), 200);
      assert.equal((await clients[1].next()).data, "via /publish");
    },
  );

  await t.step(
    "sharded: topics on all three shards reach clients on two Shark processes",
    async () => {
      await using config = await tempFile({ ...clusterConfig(seeds, true), server: { port: 0 } });
      await using one = SharkProcess.spawn(["--config", config.path]);
      await using two = SharkProcess.spawn(["--config", config.path]);
      const ports = [await one.listeningPort(), await two.listeningPort()];
      const topics = await topicPerShard(cluster, "books");
      const clients: TestClient[] = [];
      for (const port of ports) {
        const client = await TestClient.connect(`ws://127.0.0.1:${port}/`);
        clients.push(client);
        for (const topic of topics) await client.subscribe(topic);
      }
      try {
        for (const [index, topic] of topics.entries()) {
          assert.equal(await publish(ports[index % 2], topic, { index }), 200);
          for (const client of clients) {
            const message = await client.next();
            assert.equal(message.subscription, topic);
            assert.deepEqual(message.data, { index });
          }
        }
        // A service SPUBLISHes to the slot's owner; a plain PUBLISH is not delivered.
        const owner = await cluster.ownerOf(await cluster.keySlot(PREFIX + topics[0]));
        await owner.cli("PUBLISH", PREFIX + topics[0], envelope(topics[0], "plain"));
        await owner.cli("SPUBLISH", PREFIX + topics[0], envelope(topics[0], "sharded"));
        for (const client of clients) assert.equal((await client.next()).data, "sharded");
      } finally {
        for (const client of clients) await client.close();
      }
    },
  );

  await t.step("history on the cluster: positions and recovery, sharded", async () => {
    await using shark = await startShark(clusterConfig(seeds, true));
    const [topic] = await topicPerShard(cluster, "feed");
    const client = await shark.connect();
    const reply = await client.subscribe(topic);
    const epoch = reply.epoch as string;
    for (let n = 1; n <= 3; n++) assert.equal(await publish(shark.port, topic, n), 200);
    const offsets = (await client.take(3)).map((message) => message.offset);
    assert.deepEqual(offsets, [1, 2, 3]);
    const late = await shark.connect();
    const recovered = await late.subscribe(topic, { recover: { offset: 1, epoch } });
    assert.equal(recovered.recovered, true);
    assert.deepEqual((await late.take(2)).map((message) => message.data), [2, 3]);
  });

  await t.step("a slot migrated while subscribed keeps delivering (sharded)", async () => {
    await using shark = await startShark(clusterConfig(seeds, true));
    const [topic] = await topicPerShard(cluster, "books");
    const client = await shark.subscriber(topic);
    const slot = await cluster.keySlot(PREFIX + topic);
    const source = await cluster.ownerOf(slot);
    const target = cluster.node(
      (await cluster.topology()).find((node) => node.primary && node.port !== source.port)!.port,
    );
    await cluster.migrateSlot(slot, target);
    await waitUntil(
      async () => {
        const status = await publish(shark.port, topic, "after");
        return status === 200 && await client.next(500).then(() => true, () => false);
      },
      5000,
      "delivery after the slot moved",
    );
    await cluster.migrateSlot(slot, source);
    await waitUntil(
      async () => {
        const status = await publish(shark.port, topic, "back");
        return status === 200 && await client.next(500).then(() => true, () => false);
      },
      5000,
      "delivery after the slot moved back",
    );
  });

  await t.step("CLUSTER FAILOVER on a replica: subscribed again, delivering", async () => {
    await using shark = await startShark(clusterConfig(seeds, true));
    const [topic] = await topicPerShard(cluster, "books");
    const client = await shark.subscriber(topic);
    const owner = await cluster.ownerOf(await cluster.keySlot(PREFIX + topic));
    await cluster.failover(await cluster.replicaOf(owner));
    await waitUntil(
      async () => {
        const status = await publish(shark.port, topic, "after failover");
        return status === 200 && await client.next(500).then(() => true, () => false);
      },
      10_000,
      "delivery after the manual failover",
    );
  });

  await t.step(
    "SIGKILL of a primary: /healthz 503 within ping_interval + ping_timeout, 200 after the promotion, delivering again",
    async () => {
      await using shark = await startShark(clusterConfig(seeds, true));
      const [topic] = await topicPerShard(cluster, "books");
      await shark.subscriber(topic);
      const owner = await cluster.ownerOf(await cluster.keySlot(PREFIX + topic));
      const killedAt = performance.now();
      await cluster.kill(owner);
      await waitUntil(async () => (await healthStatus(shark.port)) === 503, 2000, "/healthz 503");
      const detectedMs = performance.now() - killedAt;
      assert.ok(
        detectedMs < (PING.ping_interval + PING.ping_timeout) * 1000 + 300,
        `${detectedMs}`,
      );
      await waitUntil(async () => (await healthStatus(shark.port)) === 200, 15_000, "/healthz 200");
      const client = await shark.subscriber(topic);
      assert.equal(await publish(shark.port, topic, "after promotion"), 200);
      assert.equal((await client.next()).data, "after promotion");
    },
  );
});
