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
import { runMain, SharkProcess } from "./helpers/process.ts";
import { clusterAvailable, RedisCluster } from "./helpers/redis_cluster.ts";
import { FAST_HTTP, TestShark } from "./helpers/shark.ts";
import { tempFile } from "./helpers/temp.ts";
import { delay, waitUntil } from "./helpers/wait.ts";
import { createClient } from "@redis/client";
import { RedisHistory } from "../adapters/redis.ts";

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
      room: { require_authentication: false, presence: { join_leave: true, ttl: 60 } },
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

/** Publishes `data` with history straight on `url` (SPUBLISH), as a service would; resolves with its offset. */
async function replicaHistory(url: string, topic: string, data: unknown): Promise<number> {
  const client = await createClient({ url, RESP: 2 }).connect();
  try {
    const history = new RedisHistory((args) => client.sendCommand([...args]), PREFIX, {
      sharded: true,
    });
    const { offset } = await history.publish(topic, envelope(topic, data), { size: 100, ttl: 60 });
    return offset;
  } finally {
    client.destroy();
  }
}

/** A topic `books.<n>` for each primary, by the slot its channel hashes to. */
async function topicPerShard(
  cluster: RedisCluster,
  service: string,
  tag = "",
): Promise<string[]> {
  const primaries = (await cluster.topology()).filter((node) => node.primary && !node.failed);
  const found = new Map<number, string>();
  for (let n = 0; found.size < primaries.length; n++) {
    const topic = `${service}.${tag}${n}`;
    const owner = await cluster.ownerOf(await cluster.keySlot(PREFIX + topic));
    if (!found.has(owner.port)) found.set(owner.port, topic);
  }
  return [...found.values()];
}

Deno.test({ name: "Redis Cluster (SPEC 14)", ignore }, async (t) => {
  await using cluster = await RedisCluster.start();
  const seeds = cluster.urls().slice(0, 2);

  await t.step(
    "Shark starts when any seed answers; with none, the CLI exits non-zero naming the seeds",
    async () => {
      const dead = ["redis://127.0.0.1:1/0", "redis://127.0.0.1:2/0"];
      await using shark = await startShark(clusterConfig([dead[0], seeds[0]], false));
      assert.equal(await healthStatus(shark.port), 200);
      await using config = await tempFile({ ...clusterConfig(dead, false), server: { port: 0 } });
      const { code, stderr } = await runMain(["--config", config.path]);
      assert.notEqual(code, 0);
      assert.match(
        stderr,
        /no seed of pubsub\.redis\.cluster answers.*127\.0\.0\.1:1\b.*127\.0\.0\.1:2\b/,
      );
    },
  );

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

  await t.step(
    "presence on the cluster, sharded: a join travels by SPUBLISH to the other node",
    async () => {
      await using one = await startShark(clusterConfig(seeds, true));
      await using two = await startShark(clusterConfig(seeds, true));
      const first = await one.subscriber("room.{lobby}");
      const second = await two.connect();
      const { client } = await second.subscribe("room.{lobby}");
      const joined = await first.next();
      assert.equal(joined.event, "join");
      assert.equal((joined.member as { client: string }).client, client);
      const reply = await first.request({ event: "presence", subscription: "room.{lobby}" });
      assert.equal(reply.clients, 2);
    },
  );

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

  await t.step(
    "CLUSTER FAILOVER on a replica: subscribed again at once, the history topic with no gap and no duplicate",
    async () => {
      await using shark = await startShark(clusterConfig(seeds, true));
      const [topic] = await topicPerShard(cluster, "feed", "failover");
      const client = await shark.connect();
      await client.subscribe(topic);
      const owner = await cluster.ownerOf(await cluster.keySlot(PREFIX + topic));
      const replica = await cluster.replicaOf(owner);
      const published: number[] = [];
      let publishing = true;
      const publisher = (async () => {
        for (let n = 0; publishing; n++) {
          if (await publish(shark.port, topic, n) === 200) published.push(n);
          await delay(10);
        }
      })();
      await delay(100);
      await cluster.failover(replica);
      await waitUntil(() => published.length >= 40, 10_000, "publishes after the failover");
      publishing = false;
      await publisher;
      const messages = await client.take(published.length, 5000);
      const offsets = messages.map((message) => message.offset);
      assert.deepEqual(offsets, published.map((_, index) => index + 1));
      assert.deepEqual(messages.map((message) => message.data), published);
      await client.silence(200);
    },
  );

  await t.step(
    "a dropped subscriber connection: the reconnect sends one SSUBSCRIBE per slot (no CROSSSLOT), history topics caught up",
    async () => {
      await using shark = await startShark(clusterConfig(seeds, true));
      const byOwner = new Map<number, string[]>();
      for (let n = 0; ![...byOwner.values()].some((topics) => topics.length === 3); n++) {
        const topic = `feed.reconnect${n}`;
        const owner = await cluster.ownerOf(await cluster.keySlot(PREFIX + topic));
        byOwner.set(owner.port, [...byOwner.get(owner.port) ?? [], topic]);
      }
      const [port, topics] = [...byOwner].find(([, topics]) => topics.length === 3)!;
      const client = await shark.connect();
      for (const topic of topics) await client.subscribe(topic);
      const killed = await cluster.node(port).cli("CLIENT", "KILL", "TYPE", "pubsub");
      assert.ok(Number(killed.stdout) >= 1, killed.stdout);
      await waitUntil(async () => (await healthStatus(shark.port)) === 200, 5000, "/healthz 200");
      for (const topic of topics) {
        await waitUntil(
          async () => (await publish(shark.port, topic, topic)) === 200,
          5000,
          `publish to ${topic}`,
        );
      }
      const received = (await client.take(3)).map((message) => message.data);
      assert.deepEqual(received.toSorted(), topics.toSorted());
    },
  );

  await t.step(
    "SIGSTOP of a primary (SPEC 14): detected within ping_interval + ping_timeout; classic topics move to another node at once, sharded ones follow the promotion",
    async () => {
      await using classic = await startShark(clusterConfig(seeds, false));
      await using sharded = await startShark(clusterConfig(seeds, true));
      const classicPlain = await classic.subscriber("books.frozen");
      const classicHistory = await classic.connect();
      await classicHistory.subscribe("feed.frozen");
      let holder = cluster.nodes[0];
      for (const node of cluster.nodes) {
        if (await node.numsub(PREFIX + "books.frozen") === 1) holder = node;
      }
      const shardTopics = await topicPerShard(cluster, "books", "frozen");
      const owners = await Promise.all(
        shardTopics.map(async (topic) =>
          await cluster.ownerOf(await cluster.keySlot(PREFIX + topic))
        ),
      );
      const shardedTopic = shardTopics[owners.findIndex((owner) => owner.port === holder.port)];
      const shardedPlain = await sharded.subscriber(shardedTopic);

      const frozenAt = performance.now();
      cluster.freeze(holder);
      // Sent before the loss is detected: its outcome is unknown.
      const unknown = publish(sharded.port, shardedTopic, "frozen");
      try {
        const [one, two] = await Promise.all([classicPlain.closed, shardedPlain.closed]);
        const detectedMs = performance.now() - frozenAt;
        assert.equal(one.code, 1012);
        assert.equal(two.code, 1012);
        assert.ok(
          detectedMs < (PING.ping_interval + PING.ping_timeout) * 1000 + 300,
          `${detectedMs}`,
        );
        assert.equal(classicHistory.socket.readyState, WebSocket.OPEN);
        assert.equal(await unknown, 504);
        assert.equal(await publish(sharded.port, shardedTopic, "unserved"), 503);
        // Classic pub/sub is served by any node: subscribed again elsewhere before the promotion.
        const again = await waitUntil(
          async () => {
            const client = await classic.connect();
            const reply = await client.request({
              event: "subscribe",
              subscription: "books.frozen",
            });
            if (reply.status === "ok") return client;
            await client.close();
          },
          3000,
          "a classic subscribe served by another node",
        );
        const other = cluster.nodes.find((node) => node.running && node !== holder)!;
        await other.publish(PREFIX + "books.frozen", envelope("books.frozen", "elsewhere"));
        assert.equal((await again.next()).data, "elsewhere");
        await waitUntil(
          async () => (await healthStatus(sharded.port)) === 200,
          15_000,
          "promotion",
        );
        await waitUntil(
          async () => (await healthStatus(classic.port)) === 200,
          5000,
          "classic 200",
        );
        const back = await sharded.subscriber(shardedTopic);
        assert.equal(await publish(sharded.port, shardedTopic, "promoted"), 200);
        assert.equal((await back.next()).data, "promoted");
      } finally {
        cluster.thaw(holder);
      }
      await cluster.waitHealthy();
    },
  );

  await t.step(
    "SIGKILL of a primary (SPEC 14): detected within ping_interval + ping_timeout; its plain topics closed with 1012, its history topic caught up, other shards untouched",
    async () => {
      await using shark = await startShark(clusterConfig(seeds, true));
      const books = await topicPerShard(cluster, "books", "kill");
      const feeds = await topicPerShard(cluster, "feed", "kill");
      const slotOf = async (topic: string) => await cluster.keySlot(PREFIX + topic);
      const owner = await cluster.ownerOf(await slotOf(books[0]));
      const feed = (await Promise.all(
        feeds.map(async (topic) =>
          (await cluster.ownerOf(await slotOf(topic))).port === owner.port
        ),
      )).indexOf(true);
      const lostTopic = books[0];
      const historyTopic = feeds[feed];
      const healthyTopic = books[1];
      const plain = await shark.subscriber(lostTopic);
      const other = await shark.subscriber(healthyTopic);
      const history = await shark.connect();
      const reply = await history.subscribe(historyTopic);
      for (let n = 1; n <= 2; n++) assert.equal(await publish(shark.port, historyTopic, n), 200);
      assert.deepEqual((await history.take(2)).map((message) => message.offset), [1, 2]);
      assert.equal((await owner.cli("WAIT", "1", "2000")).stdout, "1");
      const replica = await cluster.replicaOf(owner);

      const killedAt = performance.now();
      await cluster.kill(owner);
      const closed = await plain.closed;
      const detectedMs = performance.now() - killedAt;
      assert.equal(closed.code, 1012);
      assert.ok(
        detectedMs < (PING.ping_interval + PING.ping_timeout) * 1000 + 300,
        `${detectedMs}`,
      );
      assert.equal(await healthStatus(shark.port), 503);
      assert.equal(await publish(shark.port, lostTopic, "unserved"), 503);
      const late = await shark.connect();
      const refused = await late.request({ event: "subscribe", subscription: lostTopic });
      assert.equal(refused.error, "Service unavailable.");
      assert.equal(await publish(shark.port, healthyTopic, "during"), 200);
      assert.equal((await other.next()).data, "during");

      // Published on the promoted replica before Shark subscribes again: caught up from the history.
      await waitUntil(
        async () => (await replica.cli("ROLE")).stdout.startsWith("master"),
        15_000,
        "promotion",
      );
      const direct = await replicaHistory(replica.url(), historyTopic, 3);
      assert.equal(direct, 3);
      await waitUntil(async () => (await healthStatus(shark.port)) === 200, 15_000, "/healthz 200");
      assert.equal(await publish(shark.port, historyTopic, 4), 200);
      const after = await history.take(2);
      assert.deepEqual(after.map((message) => message.offset), [3, 4]);
      assert.deepEqual(after.map((message) => message.data), [3, 4]);
      assert.equal(after[0].epoch, reply.epoch);
      await history.silence(200);
      assert.equal(other.socket.readyState, WebSocket.OPEN);
      const back = await shark.subscriber(lostTopic);
      assert.equal(await publish(shark.port, lostTopic, "served"), 200);
      assert.equal((await back.next()).data, "served");
    },
  );
});
