/**
 * History with Redis (SPEC section 10) against a real `redis-server`: first
 * `adapters/redis_history.lua` itself (positions gapless and shared by
 * concurrent publishers, the capped history, ttl expiry and lost keys
 * starting a new epoch, recovery snapshots, bad input refused, the script
 * run by another language's client), then Shark nodes on one Redis
 * (positions shared by two processes, recovery under a concurrent publisher
 * on another node, the cases that cannot recover, plain `PUBLISH`).
 *
 * Skipped, with a loud warning, when `redis-server` is not installed.
 */
import assert from "node:assert/strict";
import { createClient } from "@redis/client";
import { RedisPubSub } from "../adapters/redis.ts";
import { historyKeys, RedisHistory } from "../adapters/redis_history.ts";
import { keySlot } from "../adapters/redis_keys.ts";
import { loadConfig, type SharkConfigInput } from "../mod.ts";
import type { HistoryOptions } from "../src/pubsub/history.ts";
import { TestClient } from "./helpers/client.ts";
import { SharkProcess } from "./helpers/process.ts";
import { range } from "./helpers/range.ts";
import { redisAvailable, RedisServer } from "./helpers/redis_server.ts";
import { TestShark } from "./helpers/shark.ts";
import { waitUntil } from "./helpers/wait.ts";

/** `Deno.test`; `Deno.test.ignore` (after a loud warning) without `redis-server`. */
const test: (name: string, fn: () => Promise<void>) => void = await redisAvailable()
  ? Deno.test
  : Deno.test.ignore;
const OPTIONS: HistoryOptions = { size: 100, ttl: 300 };
const SCRIPT = new URL("../adapters/redis_history.lua", import.meta.url).pathname;

function connect(redis: RedisServer) {
  return createClient({ url: redis.url(), RESP: 2 }).connect();
}

type Client = Awaited<ReturnType<typeof connect>>;

/** A Redis server, `count` connected clients and a history on each, all closed after `fn`. */
async function withRedis(
  count: number,
  prefix: string,
  fn: (redis: RedisServer, histories: RedisHistory[], clients: Client[]) => Promise<void>,
): Promise<void> {
  const redis = await RedisServer.start();
  const clients: Client[] = [];
  try {
    for (let i = 0; i < count; i++) {
      clients.push(await connect(redis));
    }
    const histories = clients.map((client) =>
      new RedisHistory((args) => client.sendCommand([...args]), prefix)
    );
    await histories[0]?.prepare();
    await fn(redis, histories, clients);
  } finally {
    for (const client of clients) client.destroy();
    await redis.stop();
  }
}

function envelope(topic: string, data: unknown): string {
  return JSON.stringify({ subscription: topic, data });
}

/** Subscribes `channel` on a fresh connection; payloads received land in the returned array. */
async function listen(redis: RedisServer, channel: string, clients: Client[]): Promise<string[]> {
  const subscriber = await connect(redis);
  clients.push(subscriber);
  const received: string[] = [];
  await subscriber.subscribe(channel, (payload) => received.push(payload));
  return received;
}

test("publish assigns gapless offsets in one epoch and PUBLISHes each envelope with its position as its last keys", () =>
  withRedis(1, "shark:", async (redis, [history], clients) => {
    const received = await listen(redis, "shark:books.b1", clients);
    const positions = [];
    for (let n = 1; n <= 20; n++) {
      positions.push(await history.publish("books.b1", envelope("books.b1", { n }), OPTIONS));
    }
    assert.deepEqual(positions.map((p) => p.offset), range(1, 20));
    const epoch = positions[0].epoch;
    assert.ok(positions.every((p) => p.epoch === epoch));
    await waitUntil(() => received.length === 20, 5000, "20 payloads");
    received.forEach((payload, i) => {
      assert.equal(
        payload,
        `{"subscription":"books.b1","data":{"n":${i + 1}},"offset":${i + 1},"epoch":"${epoch}"}`,
      );
    });
  }));

test("two publishers on two connections share one gapless sequence, and the history holds it in offset order", () =>
  withRedis(2, "", async (_redis, [one, two]) => {
    const options = { size: 1000, ttl: 300 };
    const publishes = [];
    for (let n = 0; n < 200; n++) {
      publishes.push(one.publish("books.b1", envelope("books.b1", { from: 1, n }), options));
      publishes.push(two.publish("books.b1", envelope("books.b1", { from: 2, n }), options));
    }
    const positions = await Promise.all(publishes);
    const offsets = positions.map((p) => p.offset).sort((a, b) => a - b);
    assert.deepEqual(offsets, Array.from({ length: 400 }, (_, i) => i + 1));
    assert.equal(new Set(positions.map((p) => p.epoch)).size, 1);
    const { position, payloads } = await two.recover(
      "books.b1",
      { offset: 0, epoch: positions[0].epoch },
      options,
    );
    assert.deepEqual(position, { offset: 400, epoch: positions[0].epoch });
    assert.deepEqual(payloads!.map((p) => JSON.parse(p).offset), offsets);
  }));

test("the history keeps the last `size` envelopes: recovery within them succeeds, from further back it does not", () =>
  withRedis(1, "", async (redis, [history]) => {
    const options = { size: 5, ttl: 300 };
    let epoch = "";
    for (let n = 1; n <= 12; n++) {
      ({ epoch } = await history.publish("books.b1", envelope("books.b1", n), options));
    }
    const [streamKey] = historyKeys("books.b1");
    assert.equal((await redis.cli("XLEN", streamKey)).stdout, "5");
    const within = await history.recover("books.b1", { offset: 7, epoch }, options);
    assert.deepEqual(within.payloads!.map((p) => JSON.parse(p).data), [8, 9, 10, 11, 12]);
    const beyond = await history.recover("books.b1", { offset: 6, epoch }, options);
    assert.deepEqual(beyond, { position: { offset: 12, epoch }, payloads: undefined });
    const upToDate = await history.recover("books.b1", { offset: 12, epoch }, options);
    assert.deepEqual(upToDate, { position: { offset: 12, epoch }, payloads: [] });
  }));

test("recovery refuses another epoch and an offset the history never had, reporting the current position", () =>
  withRedis(1, "", async (_redis, [history]) => {
    const { epoch } = await history.publish("books.b1", envelope("books.b1", 1), OPTIONS);
    const current = { offset: 1, epoch };
    assert.deepEqual(await history.recover("books.b1", { offset: 0, epoch: "stale" }, OPTIONS), {
      position: current,
      payloads: undefined,
    });
    assert.deepEqual(await history.recover("books.b1", { offset: 2, epoch }, OPTIONS), {
      position: current,
      payloads: undefined,
    });
  }));

test("position creates the topic's epoch at offset 0 with the ttl, keeps it on the next read, and the first publish gets offset 1 in it", () =>
  withRedis(1, "", async (redis, [history]) => {
    const created = await history.position("books.b1", OPTIONS);
    assert.equal(created.offset, 0);
    assert.match(created.epoch, /^[0-9a-f]{13,}$/);
    const [, metaKey] = historyKeys("books.b1");
    const ttl = Number((await redis.cli("PTTL", metaKey)).stdout);
    assert.ok(ttl > 290_000 && ttl <= 300_000, `PTTL ${ttl}`);
    assert.deepEqual(await history.position("books.b1", OPTIONS), created);
    assert.deepEqual(await history.publish("books.b1", envelope("books.b1", 1), OPTIONS), {
      offset: 1,
      epoch: created.epoch,
    });
  }));

test("a history whose ttl passed without a publish is gone: a new epoch at offset 0, and the old position is not recoverable", () =>
  withRedis(1, "", async (_redis, [history]) => {
    const options = { size: 10, ttl: 0.2 };
    const old = await history.publish("books.b1", envelope("books.b1", 1), options);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const recovery = await history.recover("books.b1", old, options);
    assert.equal(recovery.payloads, undefined);
    assert.equal(recovery.position.offset, 0);
    assert.notEqual(recovery.position.epoch, old.epoch);
  }));

test("every publish sets the ttl on both keys of the topic, so a published topic lives `ttl` after its last publish", () =>
  withRedis(1, "", async (redis, [history]) => {
    await history.position("books.b1", { size: 10, ttl: 1 });
    await history.publish("books.b1", envelope("books.b1", 1), { size: 10, ttl: 60 });
    for (const key of historyKeys("books.b1")) {
      const ttl = Number((await redis.cli("PTTL", key)).stdout);
      assert.ok(ttl > 50_000 && ttl <= 60_000, `${key} PTTL ${ttl}`);
    }
  }));

test("lost keys start a new epoch: all of them (a restart without persistence), or the meta alone (an eviction)", () =>
  withRedis(1, "", async (redis, [history]) => {
    const [streamKey, metaKey] = historyKeys("books.b1");
    const first = await history.publish("books.b1", envelope("books.b1", 1), OPTIONS);
    await redis.cli("DEL", metaKey);
    const second = await history.publish("books.b1", envelope("books.b1", 2), OPTIONS);
    assert.equal(second.offset, 1);
    assert.notEqual(second.epoch, first.epoch);
    assert.equal((await redis.cli("XLEN", streamKey)).stdout, "1");
    await redis.cli("FLUSHALL");
    const third = await history.publish("books.b1", envelope("books.b1", 3), OPTIONS);
    assert.equal(third.offset, 1);
    assert.notEqual(third.epoch, second.epoch);
  }));

test("a stream lost alone (evicted) makes older positions unrecoverable, not wrong", () =>
  withRedis(1, "", async (redis, [history]) => {
    const [streamKey] = historyKeys("books.b1");
    const { epoch } = await history.publish("books.b1", envelope("books.b1", 1), OPTIONS);
    await redis.cli("DEL", streamKey);
    await history.publish("books.b1", envelope("books.b1", 2), OPTIONS);
    const recovery = await history.recover("books.b1", { offset: 0, epoch }, OPTIONS);
    assert.deepEqual(recovery, { position: { offset: 2, epoch }, payloads: undefined });
    const recent = await history.recover("books.b1", { offset: 1, epoch }, OPTIONS);
    assert.deepEqual(recent.payloads!.map((p) => JSON.parse(p).data), [2]);
  }));

test("keys carry the channel prefix inside a hash tag per topic", () =>
  withRedis(1, "shark:", async (redis, [history]) => {
    await history.publish("books.b1", envelope("books.b1", 1), OPTIONS);
    const keys = (await redis.cli("KEYS", "*")).stdout.split("\n").sort();
    assert.deepEqual(keys, ["{shark:books.b1}:history", "{shark:books.b1}:meta"]);
  }));

test("the script refuses bad input with an error naming it, and stores and publishes nothing then", () =>
  withRedis(1, "", async (redis, [history], clients) => {
    const received = await listen(redis, "books.b1", clients);
    const bad: [string, HistoryOptions, RegExp][] = [
      ["[1,2]", OPTIONS, /needs a "subscription" string/],
      ['"books.b1"', OPTIONS, /not a JSON object/],
      ["{not json", OPTIONS, /not a JSON object/],
      [envelope("books.other", 1), OPTIONS, /CHANNEL must end with the envelope's subscription/],
      ['{"subscription":"books.b1"}', OPTIONS, /needs a "data" field/],
      [envelope("books.b1", 1), { size: 0, ttl: 1 }, /size/],
      [envelope("books.b1", 1), { size: 10001, ttl: 1 }, /size/],
      [envelope("books.b1", 1), { size: 1.5, ttl: 1 }, /size/],
      [envelope("books.b1", 1), { size: 10, ttl: 0 }, /ttl/],
    ];
    for (const [payload, options, error] of bad) {
      await assert.rejects(history.publish("books.b1", payload, options), error);
    }
    const wrongKeys = await redis.cli(
      "--eval",
      SCRIPT,
      "books.b1:history",
      "books.b1:meta",
      ",",
      "position",
      "books.b1",
      "10",
      "60",
    );
    assert.match(wrongKeys.stdout + wrongKeys.stderr, /KEYS must be \{CHANNEL\}:history/);
    assert.equal((await redis.cli("DBSIZE")).stdout, "0");
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(received, []);
  }));

test("after the server's script cache is flushed, EVALSHA falls back to EVAL and goes on", () =>
  withRedis(1, "", async (redis, [history]) => {
    await history.publish("books.b1", envelope("books.b1", 1), OPTIONS);
    await redis.cli("SCRIPT", "FLUSH");
    const next = await history.publish("books.b1", envelope("books.b1", 2), OPTIONS);
    assert.equal(next.offset, 2);
  }));

test("another language's client runs the shipped script (redis-cli --eval) and shares the positions of Shark's publishes", () =>
  withRedis(1, "shark:", async (redis, [history], clients) => {
    const received = await listen(redis, "shark:books.b1", clients);
    const first = await history.publish("books.b1", envelope("books.b1", 1), OPTIONS);
    const cli = await redis.cli(
      "--eval",
      SCRIPT,
      "{shark:books.b1}:history",
      "{shark:books.b1}:meta",
      ",",
      "publish",
      "shark:books.b1",
      "100",
      "300",
      envelope("books.b1", { from: "cli" }),
    );
    assert.equal(cli.code, 0, cli.stderr);
    assert.deepEqual(cli.stdout.split("\n"), ["2", first.epoch]);
    const third = await history.publish("books.b1", envelope("books.b1", 3), OPTIONS);
    assert.equal(third.offset, 3);
    await waitUntil(() => received.length === 3, 5000, "3 payloads");
    assert.deepEqual(JSON.parse(received[1]), {
      subscription: "books.b1",
      data: { from: "cli" },
      offset: 2,
      epoch: first.epoch,
    });
  }));

const SECRET = "publish-secret-for-tests";

function sharkConfig(redis: RedisServer, history = OPTIONS): SharkConfigInput {
  return {
    delivery: { metadata: false },
    publish_api: { secret: SECRET },
    pubsub: { adapter: "redis", channel_prefix: "shark:", redis: { url: redis.url() } },
    services: {
      books: { require_authentication: false, history },
      plain: { require_authentication: false },
    },
  };
}

/** What a Shark-level test gets: its Redis, the Sharks on it, and a subscribe that is cleaned up. */
interface Nodes {
  readonly redis: RedisServer;
  readonly sharks: TestShark[];
  /** Subscribes a new client of `shark` (closed after the test) and returns it with the reply. */
  subscribe(
    shark: TestShark,
    request: Record<string, unknown>,
  ): Promise<{ client: TestClient; reply: Record<string, unknown> }>;
}

/** A Redis server and `count` in-process Sharks with `history` on it, all stopped after `fn`. */
async function withSharks(
  count: number,
  history: HistoryOptions,
  fn: (nodes: Nodes) => Promise<void>,
): Promise<void> {
  const redis = await RedisServer.start();
  const sharks: TestShark[] = [];
  const clients: TestClient[] = [];
  try {
    const config = sharkConfig(redis, history);
    for (let i = 0; i < count; i++) {
      sharks.push(
        await TestShark.start(config, { pubsub: new RedisPubSub(loadConfig(config).pubsub) }),
      );
    }
    await fn({
      redis,
      sharks,
      async subscribe(shark, request) {
        const client = await TestClient.connect(shark.wsUrl);
        clients.push(client);
        const reply = await client.request({ event: "subscribe", ...request });
        assert.equal(reply.status, "ok", JSON.stringify(reply));
        return { client, reply };
      },
    });
  } finally {
    for (const client of clients) await client.close();
    for (const shark of sharks) await shark.stop();
    await redis.stop();
  }
}

test("two Shark processes on one Redis share one gapless sequence of positions: their clients see the same position for each envelope", async () => {
  const redis = await RedisServer.start();
  const processes: SharkProcess[] = [];
  const clients: TestClient[] = [];
  try {
    const config = { ...sharkConfig(redis), server: { host: "127.0.0.1", port: 0 } };
    for (let i = 0; i < 2; i++) {
      processes.push(SharkProcess.spawn([], { SHARK_CONFIG: JSON.stringify(config) }));
    }
    const ports = await Promise.all(processes.map((process) => process.listeningPort()));
    const epochs: unknown[] = [];
    for (const port of ports) {
      const client = await TestClient.connect(`ws://127.0.0.1:${port}/`);
      clients.push(client);
      const reply = await client.request({ event: "subscribe", subscription: "books.1" });
      assert.equal(reply.offset, 0);
      epochs.push(reply.epoch);
    }
    assert.equal(epochs[1], epochs[0]);
    const publish = (port: number, n: number) =>
      fetch(`http://127.0.0.1:${port}/publish`, {
        method: "POST",
        headers: { authorization: `Bearer ${SECRET}` },
        body: JSON.stringify({ subscription: "books.1", data: { n, port } }),
      }).then((response) => response.json());
    const replies = await Promise.all(range(1, 20).map((n) => publish(ports[n % 2], n)));
    assert.ok(replies.every((reply) => reply.status === "ok"));
    const [first, second] = await Promise.all(clients.map((client) => client.take(20)));
    assert.deepEqual(first.map((message) => message.offset), range(1, 20));
    assert.deepEqual(second, first);
    assert.ok(first.every((message) => message.epoch === epochs[0]));
  } finally {
    for (const client of clients) await client.close();
    for (const process of processes) {
      process.child.kill("SIGTERM");
      await process.exit();
    }
    await redis.stop();
  }
});

test("recovery through Redis while another node keeps publishing: each client gets every offset after its own exactly once, in order", () =>
  withSharks(
    2,
    { size: 1000, ttl: 60 },
    async ({ sharks: [subscriber, publisher], subscribe }) => {
      const first = await subscribe(subscriber, { subscription: "books.1" });
      const epoch = first.reply.epoch;
      await first.client.close();
      for (let n = 1; n <= 20; n++) await publisher.publish({ subscription: "books.1", data: n });
      let publishing = true;
      let published = 20;
      const loop = (async () => {
        while (publishing) {
          await publisher.publish({ subscription: "books.1", data: ++published });
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
      })();
      const from = [0, 7, 19, 20];
      const clients = [];
      for (const offset of from) {
        const { client, reply } = await subscribe(subscriber, {
          subscription: "books.1",
          recover: { offset, epoch },
        });
        assert.equal(reply.recovered, true, JSON.stringify(reply));
        clients.push(client);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
      publishing = false;
      await loop;
      for (const [index, client] of clients.entries()) {
        const expected = range(from[index] + 1, published);
        const messages = await client.take(expected.length);
        assert.deepEqual(messages.map((message) => message.offset), expected);
        assert.deepEqual(messages.map((message) => message.data), expected);
        await client.silence(50);
      }
    },
  ));

test("through Redis, a stale epoch, an offset older than the history and an expired ttl give `recovered: false` and replay nothing", () =>
  withSharks(1, { size: 5, ttl: 0.3 }, async ({ sharks: [shark], subscribe }) => {
    const first = await subscribe(shark, { subscription: "books.1" });
    const epoch = first.reply.epoch;
    for (let n = 1; n <= 12; n++) await shark.publish({ subscription: "books.1", data: n });
    await first.client.take(12);
    for (const recover of [{ offset: 12, epoch: "stale" }, { offset: 6, epoch }]) {
      const { client, reply } = await subscribe(shark, { subscription: "books.1", recover });
      assert.deepEqual([reply.recovered, reply.offset, reply.epoch], [false, 12, epoch]);
      await client.silence(50);
    }
    await new Promise((resolve) => setTimeout(resolve, 600));
    const { client, reply } = await subscribe(shark, {
      subscription: "books.1",
      recover: { offset: 12, epoch },
    });
    assert.deepEqual([reply.recovered, reply.offset], [false, 0]);
    assert.notEqual(reply.epoch, epoch);
    await client.silence(50);
  }));

test("a plain PUBLISH to a history service is delivered without a position and not stored; the shipped script run by redis-cli is delivered with one", () =>
  withSharks(1, OPTIONS, async ({ redis, sharks: [shark], subscribe }) => {
    const { client, reply } = await subscribe(shark, { subscription: "books.1" });
    const plain = JSON.stringify({ subscription: "books.1", data: "plain" });
    assert.equal(await redis.publish("shark:books.1", plain), 1);
    assert.deepEqual(await client.next(), {
      event: "message",
      subscription: "books.1",
      data: "plain",
    });
    const cli = await redis.cli(
      "--eval",
      SCRIPT,
      "{shark:books.1}:history",
      "{shark:books.1}:meta",
      ",",
      "publish",
      "shark:books.1",
      "100",
      "300",
      JSON.stringify({ subscription: "books.1", data: "scripted" }),
    );
    assert.equal(cli.code, 0, cli.stderr);
    assert.deepEqual(await client.next(), {
      event: "message",
      subscription: "books.1",
      data: "scripted",
      offset: 1,
      epoch: reply.epoch,
    });
  }));

test("every key of a topic's history hashes to its channel's slot, a channel with a hash tag or a stray } included, and the script accepts them", () =>
  withRedis(1, "", async (redis, [history], clients) => {
    for (const topic of ["books.b1", "chat.{room}.1", "chat.a}b"]) {
      const keys = historyKeys(topic);
      for (const key of keys) assert.equal(keySlot(key), keySlot(topic), key);
      const received = await listen(redis, topic, clients);
      const position = await history.publish(topic, envelope(topic, 1), OPTIONS);
      assert.equal(position.offset, 1);
      await waitUntil(() => received.length === 1, 2000, `${topic} published`);
      assert.equal((await redis.cli("EXISTS", ...keys)).stdout, "2");
    }
    assert.deepEqual(historyKeys("chat.{room}.1"), ["chat.{room}.1:history", "chat.{room}.1:meta"]);
  }));

test("sharded: the script SPUBLISHes the positioned envelope (SPEC 14), and a plain subscriber gets nothing", () =>
  withRedis(1, "", async (redis, _, clients) => {
    const history = new RedisHistory((args) => clients[0].sendCommand([...args]), "", {
      sharded: true,
    });
    const plain = await listen(redis, "books.b1", clients);
    const subscriber = await connect(redis);
    clients.push(subscriber);
    const sharded: string[] = [];
    await subscriber.sSubscribe("books.b1", (payload) => sharded.push(payload));
    await history.publish("books.b1", envelope("books.b1", 1), OPTIONS);
    await waitUntil(() => sharded.length === 1, 2000, "SPUBLISHed");
    assert.deepEqual(plain, []);
  }));
