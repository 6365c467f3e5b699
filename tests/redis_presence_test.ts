/**
 * Presence with Redis (SPEC section 12) against a real `redis-server`: the
 * store of `adapters/redis_presence.ts` and its script, with two or three
 * adapters on one Redis as the nodes: members shared, one join and one
 * leave per member whoever removes it, the members of a node that stopped
 * refreshing removed by another with their leaves (once, however many nodes
 * sweep at once), keys in the channel's slot and gone when abandoned, the
 * join/leave bytes those of `presence_payload.ts`, and the cost of a change
 * independent of the member count.
 *
 * Skipped, with a loud warning, when `redis-server` is not installed.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createClient } from "@redis/client";
import { RedisPubSub } from "../adapters/redis.ts";
import { keySlot } from "../adapters/redis_keys.ts";
import { presenceKeys, RedisPresence } from "../adapters/redis_presence.ts";
import { loadConfig } from "../mod.ts";
import { memberJson, presencePayload } from "../src/presence/presence_payload.ts";
import type { Member, PresenceOptions } from "../src/presence/store.ts";
import { redisAvailable, RedisServer } from "./helpers/redis_server.ts";
import { tempDir } from "./helpers/temp.ts";
import { delay, waitUntil } from "./helpers/wait.ts";

/** `Deno.test`; `Deno.test.ignore` (after a loud warning) without `redis-server`. */
const test: (name: string, fn: () => Promise<void>) => void = await redisAvailable()
  ? Deno.test
  : Deno.test.ignore;
const PREFIX = "shark:";
const OPTIONS: PresenceOptions = { ttl: 60, joinLeave: true };
/** Short enough for a test to outlive it; the script takes fractions of a second. */
const SHORT: PresenceOptions = { ttl: 0.3, joinLeave: true };

function member(client: string, info: Member["info"] = {}, user = ""): Member {
  return { client, user, info };
}

function connect(redis: RedisServer) {
  return createClient({ url: redis.url(), RESP: 2 }).connect();
}

type Client = Awaited<ReturnType<typeof connect>>;

/** What a test gets: its Redis, one started adapter per node, and a listener on channels. */
interface Nodes {
  readonly redis: RedisServer;
  readonly nodes: RedisPresence[];
  readonly adapters: RedisPubSub[];
  /** Subscribes `channel` on a plain connection; the payloads' bytes land in the returned array. */
  listen(channel: string): Promise<Buffer[]>;
}

/** A Redis server and `count` started Redis adapters on it (each a node), all closed after `fn`. */
async function withNodes(count: number, fn: (nodes: Nodes) => Promise<void>): Promise<void> {
  const redis = await RedisServer.start();
  const adapters: RedisPubSub[] = [];
  const clients: Client[] = [];
  try {
    const options = loadConfig({
      pubsub: { adapter: "redis", channel_prefix: PREFIX, redis: { url: redis.url() } },
    }).pubsub;
    for (let i = 0; i < count; i++) {
      const adapter = new RedisPubSub(options);
      adapters.push(adapter);
      await adapter.start({ message() {}, health() {} });
      await adapter.presence.prepare();
    }
    await fn({
      redis,
      nodes: adapters.map((adapter) => adapter.presence),
      adapters,
      async listen(channel) {
        const subscriber = await connect(redis);
        clients.push(subscriber);
        const received: Buffer[] = [];
        await subscriber.subscribe(channel, (payload) => received.push(payload), true);
        return received;
      },
    });
  } finally {
    for (const client of clients) client.destroy();
    await Promise.all(adapters.map((adapter) => adapter.close()));
    await redis.stop();
  }
}

function texts(received: Buffer[]): string[] {
  return received.map((payload) => payload.toString("utf8"));
}

function clients(members: Member[]): string[] {
  return members.map((each) => each.client).sort();
}

test("members added on two nodes are read alike on both, and a removed one is gone from both", () =>
  withNodes(2, async ({ nodes: [one, two] }) => {
    await one.add("chat.room", member("c1", { name: "Ann" }, "u1"), OPTIONS);
    await two.add("chat.room", member("c2", { name: "Bob", n: [1, { x: null }] }, "u2"), OPTIONS);
    await two.add("chat.other", member("c3"), OPTIONS);
    for (const node of [one, two]) {
      const read = await node.read("chat.room", OPTIONS);
      assert.deepEqual(read.sort((a, b) => a.client.localeCompare(b.client)), [
        member("c1", { name: "Ann" }, "u1"),
        member("c2", { name: "Bob", n: [1, { x: null }] }, "u2"),
      ]);
    }
    assert.equal(await one.remove("chat.room", "c1", OPTIONS), true);
    assert.deepEqual(clients(await two.read("chat.room", OPTIONS)), ["c2"]);
    assert.deepEqual(clients(await one.read("chat.other", OPTIONS)), ["c3"]);
    assert.deepEqual(await one.read("chat.nobody", OPTIONS), []);
  }));

test("add publishes exactly one join and remove exactly one leave on the topic's channel, byte for byte what presence_payload.ts builds; a second remove resolves false and publishes nothing", () =>
  withNodes(2, async ({ nodes: [one, two], listen }) => {
    const topic = 'chat.r\\o"om ünï 😀';
    const received = await listen(PREFIX + topic);
    const joined = member("c1", { name: 'Ännа "q" \\ 😀', age: 3.5, tags: ["a"], o: {} }, "7");
    const expected = (kind: "join" | "leave") =>
      Buffer.from(new TextEncoder().encode(presencePayload(kind, topic, memberJson(joined))));
    await one.add(topic, joined, OPTIONS);
    await waitUntil(() => received.length === 1, 5000, "the join");
    assert.deepEqual(received[0], expected("join"));
    assert.equal(await two.remove(topic, "c1", OPTIONS), true);
    assert.equal(await one.remove(topic, "c1", OPTIONS), false);
    assert.equal(await two.remove(topic, "c1", OPTIONS), false);
    await waitUntil(() => received.length === 2, 5000, "the leave");
    assert.deepEqual(received[1], expected("leave"));
    await delay(100);
    assert.equal(received.length, 2);
  }));

test("without join_leave, adding, removing and expiring members publish nothing", () =>
  withNodes(2, async ({ nodes: [one, two], listen }) => {
    const quiet = { ttl: SHORT.ttl, joinLeave: false };
    const received = await listen(`${PREFIX}chat.room`);
    await one.add("chat.room", member("c1"), quiet);
    await one.add("chat.room", member("c2"), quiet);
    assert.equal(await one.remove("chat.room", "c1", quiet), true);
    await delay(400);
    assert.equal((await two.refresh("chat.room", quiet)).expired, 1);
    await delay(100);
    assert.deepEqual(received, []);
  }));

test("a node that stops refreshing: after ttl another node's refresh removes its members, one leave each, and its own later remove finds them gone", () =>
  withNodes(2, async ({ nodes: [dead, live], listen }) => {
    const received = await listen(`${PREFIX}chat.room`);
    for (const client of ["d1", "d2", "d3"]) await dead.add("chat.room", member(client), SHORT);
    await live.add("chat.room", member("l1"), SHORT);
    assert.equal((await live.refresh("chat.room", SHORT)).expired, 0);
    await delay(400);
    assert.equal((await live.refresh("chat.room", SHORT)).expired, 3);
    assert.deepEqual(clients(await live.read("chat.room", SHORT)), ["l1"]);
    assert.equal(await dead.remove("chat.room", "d1", SHORT), false);
    await waitUntil(() => received.length === 7, 5000, "4 joins and 3 leaves");
    const leaves = texts(received).map((text) => JSON.parse(text)).filter((payload) =>
      payload["shark.presence"] === "leave"
    );
    assert.deepEqual(leaves.map((leave) => leave.member.client).sort(), ["d1", "d2", "d3"]);
    // The node taken for dead learns it at its next refresh; the live one was not.
    assert.deepEqual(await dead.refresh("chat.room", SHORT), { expired: 0, lapsed: true });
    assert.deepEqual(await dead.refresh("chat.room", SHORT), { expired: 0, lapsed: false });
    assert.equal((await live.refresh("chat.room", SHORT)).lapsed, false);
    await delay(100);
    assert.equal(received.length, 7);
  }));

test("a read after another node's deadline removes that node's members first, with their leaves", () =>
  withNodes(2, async ({ nodes: [dead, reader], listen }) => {
    const received = await listen(`${PREFIX}chat.room`);
    await dead.add("chat.room", member("d1"), SHORT);
    assert.deepEqual(clients(await reader.read("chat.room", SHORT)), ["d1"]);
    await delay(400);
    assert.deepEqual(await reader.read("chat.room", SHORT), []);
    await waitUntil(() => received.length === 2, 5000, "a join and a leave");
    assert.equal(JSON.parse(received[1].toString())["shark.presence"], "leave");
  }));

test("a node that keeps refreshing keeps its members long past ttl, while other nodes read and refresh", () =>
  withNodes(2, async ({ nodes: [keeper, other], listen }) => {
    const received = await listen(`${PREFIX}chat.room`);
    await keeper.add("chat.room", member("k1"), SHORT);
    await other.add("chat.room", member("o1"), SHORT);
    for (let n = 0; n < 10; n++) {
      await delay(100);
      await keeper.refresh("chat.room", SHORT);
      await other.refresh("chat.room", SHORT);
      assert.deepEqual(clients(await other.read("chat.room", SHORT)), ["k1", "o1"]);
    }
    assert.equal(received.length, 2);
  }));

test("when two nodes sweep a dead node at once, with refreshes and reads racing, every member leaves exactly once", () =>
  withNodes(3, async ({ nodes: [dead, one, two], listen }) => {
    const received = await listen(`${PREFIX}chat.room`);
    const count = 200;
    await Promise.all(
      Array.from({ length: count }, (_, i) => dead.add("chat.room", member(`d${i}`), SHORT)),
    );
    // The live nodes' deadlines (ttl 60) stay ahead; only the dead node's passes.
    await one.add("chat.room", member("o1"), OPTIONS);
    await two.add("chat.room", member("t1"), OPTIONS);
    await delay(400);
    const sweeps: Promise<number>[] = [];
    for (let n = 0; n < 20; n++) {
      sweeps.push(
        one.refresh("chat.room", OPTIONS).then(({ expired }) => expired),
        two.refresh("chat.room", OPTIONS).then(({ expired }) => expired),
      );
      sweeps.push(one.read("chat.room", OPTIONS).then(() => 0));
      sweeps.push(two.read("chat.room", OPTIONS).then(() => 0));
    }
    const removed = await Promise.all(sweeps);
    assert.equal(removed.reduce((a, b) => a + b, 0), count);
    await waitUntil(() => received.length === 2 * count + 2, 5000, "every join and leave");
    await delay(100);
    const leaves = texts(received).map((text) => JSON.parse(text)).filter((payload) =>
      payload["shark.presence"] === "leave"
    ).map((leave) => leave.member.client);
    assert.equal(leaves.length, count);
    assert.equal(new Set(leaves).size, count);
    assert.deepEqual(clients(await one.read("chat.room", OPTIONS)), ["o1", "t1"]);
  }));

test("the keys of a topic expire 2 x ttl after its last add or refresh, so an abandoned topic vanishes", () =>
  withNodes(1, async ({ redis, nodes: [node] }) => {
    await node.add("chat.room", member("c1"), SHORT);
    for (const key of presenceKeys(`${PREFIX}chat.room`)) {
      const ttl = Number((await redis.cli("PTTL", key)).stdout);
      assert.ok(ttl > 400 && ttl <= 600, `${key} PTTL ${ttl}`);
    }
    await delay(300);
    await node.refresh("chat.room", SHORT);
    await delay(400);
    assert.equal((await redis.cli("DBSIZE")).stdout, "3");
    await delay(300);
    assert.equal((await redis.cli("DBSIZE")).stdout, "0");
  }));

test("add, remove and refresh never read the whole member list: the commands they run do not grow with the members", () =>
  withNodes(2, async ({ redis, nodes: [one, two] }) => {
    const commands = async () => {
      const stats = (await redis.cli("INFO", "commandstats")).stdout;
      return [...stats.matchAll(/cmdstat_(\w+):calls=(\d+)/g)]
        .filter(([, name]) => !["info", "config", "evalsha"].includes(name))
        .map(([, name, calls]) => `${name}=${calls}`).sort();
    };
    const changes = async (topic: string) => {
      await redis.cli("CONFIG", "RESETSTAT");
      await one.add(topic, member("new"), OPTIONS);
      await two.refresh(topic, OPTIONS);
      await one.remove(topic, "new", OPTIONS);
      return await commands();
    };
    await one.add("chat.small", member("c0"), OPTIONS);
    for (let i = 0; i < 2000; i += 100) {
      await Promise.all(
        Array.from({ length: 100 }, (_, j) => two.add("chat.big", member(`c${i + j}`), OPTIONS)),
      );
    }
    const small = await changes("chat.small");
    assert.deepEqual(await changes("chat.big"), small);
    for (const whole of ["hgetall", "hvals", "hkeys", "smembers", "zrange"]) {
      assert.ok(!small.some((entry) => entry.startsWith(`${whole}=`)), small.join(" "));
    }
  }));

test("every key of a topic is in its channel's Redis Cluster slot, on a one-node cluster that refuses cross-slot scripts", async () => {
  await using dir = await tempDir("shark-cluster-");
  await using redis = await RedisServer.start({
    args: ["--cluster-enabled", "yes", "--cluster-config-file", `${dir.path}/nodes.conf`],
  });
  assert.equal((await redis.cli("CLUSTER", "ADDSLOTSRANGE", "0", "16383")).stdout, "OK");
  await waitUntil(
    async () => (await redis.cli("CLUSTER", "INFO")).stdout.includes("cluster_state:ok"),
    10_000,
    "the one-node cluster serving every slot",
  );
  const client = await connect(redis);
  try {
    const node = new RedisPresence((args) => client.sendCommand([...args]), PREFIX);
    await node.prepare();
    const topics = ["chat.room", "chat.{room}", "chat.{}", "chat.{}{room}", "chat.a}b", "chat.}{"];
    for (const topic of topics) {
      await node.add(topic, member("c1"), OPTIONS);
      await node.add(topic, member("c2"), OPTIONS);
      await node.refresh(topic, OPTIONS);
      assert.deepEqual(clients(await node.read(topic, OPTIONS)), ["c1", "c2"]);
      assert.equal(await node.remove(topic, "c1", OPTIONS), true);
      const slot = Number((await redis.cli("CLUSTER", "KEYSLOT", PREFIX + topic)).stdout);
      assert.equal(keySlot(PREFIX + topic), slot);
      for (const key of presenceKeys(PREFIX + topic)) {
        assert.equal((await redis.cli("EXISTS", key)).stdout, "1", key);
        assert.equal(Number((await redis.cli("CLUSTER", "KEYSLOT", key)).stdout), slot, key);
      }
    }
  } finally {
    client.destroy();
  }
});

test("after the server's script cache is flushed, EVALSHA falls back to EVAL and goes on", () =>
  withNodes(1, async ({ redis, nodes: [node] }) => {
    await node.add("chat.room", member("c1"), OPTIONS);
    await redis.cli("SCRIPT", "FLUSH");
    await node.add("chat.room", member("c2"), OPTIONS);
    assert.deepEqual(clients(await node.read("chat.room", OPTIONS)), ["c1", "c2"]);
  }));

test("the script refuses a node id that could mix with another's members, and a ttl that is not > 0, changing nothing", () =>
  withNodes(1, async ({ redis }) => {
    const client = await connect(redis);
    try {
      const run = (args: readonly string[]) => client.sendCommand([...args]);
      await assert.rejects(
        new RedisPresence(run, PREFIX, "a:b").add("chat.room", member("c1"), OPTIONS),
        /node id/,
      );
      await assert.rejects(
        new RedisPresence(run, PREFIX).add("chat.room", member("c1"), { ttl: 0, joinLeave: true }),
        /ttl/,
      );
      assert.equal((await redis.cli("DBSIZE")).stdout, "0");
    } finally {
      client.destroy();
    }
  }));

test("after a lost connection the node goes on under a fresh id: the members whose removes failed meanwhile expire with one leave each, while its new members live on", () =>
  withNodes(1, async ({ redis, nodes: [node], adapters: [adapter], listen }) => {
    const received = await listen(`${PREFIX}chat.room`);
    await node.add("chat.room", member("c1"), SHORT);
    await node.add("chat.room", member("c2"), SHORT);
    const before = node.node;
    // The adapter's connections (its subscriber subscribes nothing yet, so it is "normal" too).
    assert.ok(Number((await redis.cli("CLIENT", "KILL", "TYPE", "normal")).stdout) >= 1);
    await waitUntil(() => !adapter.healthy, 5000, "the adapter noticing the loss");
    assert.notEqual(node.node, before);
    // What the engine does as it closes the sessions: the removes cannot reach Redis.
    await assert.rejects(node.remove("chat.room", "c1", SHORT));
    await assert.rejects(node.remove("chat.room", "c2", SHORT));
    await waitUntil(() => adapter.healthy, 5000, "the adapter reconnected");
    await node.add("chat.room", member("c3"), SHORT);
    for (let n = 0; n < 6; n++) {
      await delay(100);
      await node.refresh("chat.room", SHORT);
    }
    assert.deepEqual(clients(await node.read("chat.room", SHORT)), ["c3"]);
    await waitUntil(() => received.length === 5, 5000, "3 joins and 2 leaves");
    const leaves = texts(received).map((text) => JSON.parse(text)).filter((payload) =>
      payload["shark.presence"] === "leave"
    );
    assert.deepEqual(leaves.map((leave) => leave.member.client).sort(), ["c1", "c2"]);
  }));

test("on a lost Redis, read, add, remove and refresh reject (at once, and while it is away)", () =>
  withNodes(1, async ({ redis, nodes: [node], adapters: [adapter] }) => {
    await node.add("chat.room", member("c1"), OPTIONS);
    await redis.stop({ kill: true });
    await assert.rejects(node.read("chat.room", OPTIONS));
    await waitUntil(() => !adapter.healthy, 5000, "the adapter noticing the loss");
    await assert.rejects(node.read("chat.room", OPTIONS), /unavailable/);
    await assert.rejects(node.add("chat.room", member("c2"), OPTIONS), /unavailable/);
    await assert.rejects(node.remove("chat.room", "c1", OPTIONS), /unavailable/);
    await assert.rejects(node.refresh("chat.room", OPTIONS), /unavailable/);
  }));
