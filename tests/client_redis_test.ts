/**
 * The client SDK against Shark on a real `redis-server`: the 1012 close when
 * Redis is lost (the client waits out Shark's refusals and comes back), and
 * recovery (SPEC section 10) on a history service: across a reconnect with a
 * publisher running all along, and across a Shark restart with messages
 * published through another node meanwhile. Every message arrives once, in
 * order.
 *
 * Skipped, with a loud warning, when `redis-server` is not installed.
 */
import assert from "node:assert/strict";
import { RedisPubSub } from "../adapters/redis.ts";
import type { MessageFrame, SharkClient, SubscribeReply } from "../client.ts";
import { loadConfig, type SharkConfigInput } from "../mod.ts";
import { AppService, Recorder, TcpProxy, testClient } from "./helpers/client_app.ts";
import { range } from "./helpers/range.ts";
import { redisAvailable, RedisServer } from "./helpers/redis_server.ts";
import { TestShark } from "./helpers/shark.ts";
import { delay, waitUntil } from "./helpers/wait.ts";

/** `Deno.test`; `Deno.test.ignore` (after a loud warning) without `redis-server`. */
const test: (name: string, fn: () => Promise<void>) => void = await redisAvailable()
  ? Deno.test
  : Deno.test.ignore;

function redisConfig(app: AppService, url: string, history = true): SharkConfigInput {
  return {
    authentication: app.authentication,
    delivery: { metadata: false },
    pubsub: { adapter: "redis", redis: { url, ping_interval: 0.2, ping_timeout: 0.5 } },
    services: {
      books: {
        before_subscribe: app.url("/before_subscribe"),
        on_message: app.url("/on_message"),
        history: history ? { size: 1000, ttl: 60 } : null,
      },
    },
  };
}

/** Shark on its own {@link RedisPubSub}, as main.ts builds one. */
function startRedisShark(config: SharkConfigInput, port = 0): Promise<TestShark> {
  return TestShark.start(config, { port, pubsub: new RedisPubSub(loadConfig(config).pubsub) });
}

/** Subscribes `name`, recording its subscribe replies and messages. */
async function subscribed(client: SharkClient, name: string) {
  const messages: MessageFrame[] = [];
  const replies: SubscribeReply[] = [];
  const book = client.subscribe(name, {
    onSubscribed: (reply) => replies.push(reply),
    onMessage: (message) => messages.push(message),
  });
  await book.ready;
  return { book, messages, replies };
}

function numbers(messages: MessageFrame[]): number[] {
  return messages.map((message) => (message.data as { n: number }).n);
}

test("Redis lost: the client is closed with 1012, waits out Shark's refusals with backoff, and subscribes again once Redis is back", async () => {
  await using redis = await RedisServer.start();
  await using app = new AppService();
  let state = 0;
  app.answer("/before_subscribe", () => ({ status: "ok", data: { state } }));
  await using node = await startRedisShark(redisConfig(app, redis.url(), false));
  await using client = testClient(node.wsUrl, {
    auth: () => app.issue(),
    backoff: { min: 50, max: 200 },
  });
  const events = new Recorder(client);
  const replies: SubscribeReply[] = [];
  const book = client.subscribe("books.b1", { onSubscribed: (reply) => replies.push(reply) });
  await book.ready;
  await redis.stop({ kill: true });
  const [lost] = await events.wait("disconnected");
  assert.equal(lost.detail.code, 1012);
  assert.equal(lost.detail.reconnect, true);
  await events.wait("disconnected", 3);
  state = 1;
  await redis.restart();
  await waitUntil(() => replies.length === 2, 10_000, "subscribed again");
  assert.deepEqual(replies[1].data, { state: 1 });
  assert.equal(replies[1].recovered, undefined);
  assert.ok(events.of("disconnected").slice(1).every((event) => event.detail.code === 1006));
  assert.equal(app.issued.length, 2, "a ticket only for connections that opened");
});

test("recovery across a reconnect (Redis, the network cut): a publisher runs all along; the client recovers and every message arrives once, in order", async () => {
  await using redis = await RedisServer.start();
  await using app = new AppService();
  await using node = await startRedisShark(redisConfig(app, redis.url()));
  await using network = new TcpProxy(node.port);
  await using client = testClient(network.url, {
    auth: () => app.issue(),
    backoff: { min: 200, max: 200 },
    random: () => 1,
  });
  const events = new Recorder(client);
  const { messages, replies } = await subscribed(client, "books.b1");
  const total = 60;
  const publishedAt: number[] = [];
  const publisher = (async () => {
    for (let n = 1; n <= total; n++) {
      await node.shark.publish({ subscription: "books.b1", data: { n } });
      publishedAt.push(performance.now());
      await delay(15);
    }
  })();
  await waitUntil(() => messages.length >= 10, 5000, "ten messages");
  network.cut();
  const [dropped] = await events.wait("disconnected");
  assert.equal(dropped.detail.code, 1006);
  await publisher;
  await waitUntil(() => messages.length >= total, 10_000, `${total} messages`);
  await delay(200);

  assert.deepEqual(numbers(messages), range(1, total));
  const offsets = messages.map((message) => message.offset);
  assert.deepEqual(offsets, range(offsets[0]!, offsets[0]! + total - 1));
  assert.equal(replies.length, 2);
  assert.equal(replies[1].recovered, true);
  assert.equal(replies[1].epoch, replies[0].epoch);
  const [reconnected] = events.of("connected").slice(1);
  const missed = publishedAt.filter((at) => at > dropped.at && at < reconnected.at);
  assert.ok(missed.length >= 3, `${missed.length} published while disconnected`);
});

test("recovery across a Shark restart (Redis): messages published through another node meanwhile arrive once, in order, then live ones", async () => {
  await using redis = await RedisServer.start();
  await using app = new AppService();
  const config = redisConfig(app, redis.url());
  await using node = await startRedisShark(config);
  await using other = await startRedisShark(config);
  await using client = testClient(node.wsUrl, {
    auth: () => app.issue(),
    backoff: { min: 50, max: 200 },
  });
  const { book, messages, replies } = await subscribed(client, "books.b1");
  for (let n = 1; n <= 3; n++) {
    await node.shark.publish({ subscription: "books.b1", data: { n } });
  }
  await waitUntil(() => messages.length === 3, 3000, "three messages");

  await node.stop();
  for (let n = 4; n <= 8; n++) {
    await other.shark.publish({ subscription: "books.b1", data: { n } });
  }
  await using _restarted = await startRedisShark(config, node.port);
  await waitUntil(() => replies.length === 2 && messages.length === 8, 10_000, "recovered");
  await other.shark.publish({ subscription: "books.b1", data: { n: 9 } });
  await waitUntil(() => messages.length === 9, 3000, "a live message");
  await delay(200);

  assert.equal(replies[1].recovered, true);
  assert.equal(replies[1].offset, 8);
  assert.deepEqual(numbers(messages), range(1, 9));
  assert.deepEqual(messages.map((message) => message.offset), range(1, 9));
  assert.deepEqual(book.position, { offset: 9, epoch: replies[0].epoch });
});
