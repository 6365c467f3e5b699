/**
 * The Redis adapter against a real `redis-server` (SPEC sections 3, 5 "Pub/sub
 * loss", 6 `pubsub`, 9): SocketShark-compatible publishing, channel prefixes,
 * `redis_alt`, several nodes on one Redis, loss and recovery, start-up
 * failure, invalid envelopes, and the subscription refcount seen from Redis.
 *
 * Skipped, with a loud warning, when `redis-server` is not installed.
 */
import assert from "node:assert/strict";
import { RedisPubSub } from "../adapters/redis.ts";
import { loadConfig, type PubSubListener, type SharkConfigInput } from "../mod.ts";
import { TestClient } from "./helpers/client.ts";
import { freePort } from "./helpers/loopback.ts";
import { runMain, SharkProcess } from "./helpers/process.ts";
import {
  makeTlsFiles,
  opensslAvailable,
  redisAvailable,
  RedisServer,
} from "./helpers/redis_server.ts";
import { TestService } from "./helpers/service.ts";
import { FAST_HTTP, TestShark } from "./helpers/shark.ts";
import { tempDir, tempFile } from "./helpers/temp.ts";
import { delay, waitUntil, within } from "./helpers/wait.ts";

const ignore = !(await redisAvailable());
const ignoreTls = ignore || !(await opensslAvailable());
/** `Deno.test`; `Deno.test.ignore` (after a loud warning) without `redis-server`. */
const test: (name: string, fn: (t: Deno.TestContext) => Promise<void>) => void = ignore
  ? Deno.test.ignore
  : Deno.test;
const SECRET = "publish-secret-for-tests";
/** Fast loss detection, so that the loss tests take well under a second to notice. */
const PING = { ping_interval: 0.2, ping_timeout: 0.5 };

function redisConfig(
  url: string | { env: string },
  extra: SharkConfigInput = {},
): SharkConfigInput {
  return {
    http: FAST_HTTP,
    publish_api: { secret: SECRET },
    services: { books: { require_authentication: false, extra_fields: ["author"] } },
    ...extra,
    pubsub: { adapter: "redis", redis: { url, ...PING }, ...extra.pubsub },
  };
}

/** An in-process Shark on a {@link RedisPubSub} built from the same configuration. */
function startShark(config: SharkConfigInput): Promise<TestShark> {
  return TestShark.start(config, { pubsub: new RedisPubSub(loadConfig(config).pubsub) });
}

/** A RedisPubSub built from a `pubsub` section, as main.ts builds it; disposing of it closes it. */
function adapter(
  pubsub: NonNullable<SharkConfigInput["pubsub"]>,
): RedisPubSub & AsyncDisposable {
  const built = new RedisPubSub(loadConfig({ pubsub: { ...pubsub, adapter: "redis" } }).pubsub);
  return Object.assign(built, { [Symbol.asyncDispose]: () => built.close() });
}

async function healthStatus(shark: TestShark): Promise<number> {
  const response = await fetch(shark.url("/healthz"));
  await response.body?.cancel();
  return response.status;
}

/** Waits until `/healthz` answers 200 again. */
function healthy(shark: TestShark, ms: number): Promise<boolean> {
  return waitUntil(async () => (await healthStatus(shark)) === 200, ms, "/healthz 200");
}

function envelope(subscription: string, data: unknown, extra: Record<string, unknown> = {}) {
  return JSON.stringify({ subscription, data, ...extra });
}

/** A listener that records what an adapter reports. */
function recorder() {
  const messages: [string, string][] = [];
  const health: [boolean, string | undefined][] = [];
  const listener: PubSubListener = {
    message: (topic, payload) => messages.push([topic, payload]),
    health: (healthy, reason) => health.push([healthy, reason]),
  };
  return { messages, health, listener };
}

/** Starts `pubsub` with a {@link recorder} and subscribes `topics`; returns the recording. */
async function listening(pubsub: RedisPubSub, ...topics: string[]) {
  const recorded = recorder();
  await pubsub.start(recorded.listener);
  for (const topic of topics) await pubsub.subscribe(topic);
  return recorded;
}

test("a SocketShark publisher's raw `PUBLISH books.book_1 {envelope}` reaches the subscribed client unchanged", async () => {
  await using redis = await RedisServer.start();
  await using shark = await startShark(redisConfig(redis.url(2)));
  const client = await shark.subscriber("books.book_1", { author: "ann" });
  const data = { title: "Dune", tags: ["sf", "classic"], price: 9.5, nested: { a: null } };
  const receivers = await redis.publish(
    "books.book_1",
    envelope("books.book_1", data, { published_at: "2024-05-01T12:00:00+02:00" }),
  );
  assert.equal(receivers, 1);
  const message = await client.next();
  assert.equal(message.event, "message");
  assert.equal(message.subscription, "books.book_1");
  assert.deepEqual(message.data, data);
  assert.equal(message.author, "ann");
  assert.equal(message.published_at, "2024-05-01T10:00:00.000Z");
  assert.equal(typeof message.received_at, "string");
  assert.equal(typeof message.sent_at, "string");
  assert.equal(message.queue_size, 0);
});

test("channel_prefix: a publish on prefix + subscription reaches the client, one without it does not", async () => {
  await using redis = await RedisServer.start();
  const config = redisConfig(redis.url(), { pubsub: { channel_prefix: "shark:" } });
  await using shark = await startShark(config);
  const client = await shark.subscriber("books.book_1");
  assert.equal(await redis.numsub("shark:books.book_1"), 1);
  assert.equal(await redis.publish("books.book_1", envelope("books.book_1", { n: 0 })), 0);
  await client.silence(200);
  await redis.publish("shark:books.book_1", envelope("books.book_1", { n: 1 }));
  assert.deepEqual((await client.next()).data, { n: 1 });
  await shark.publish({ subscription: "books.book_1", data: { n: 2 } });
  assert.deepEqual((await client.next()).data, { n: 2 });
});

test("redis_alt: messages published on either server with its own prefix reach the client; publishing goes to the main server only", async () => {
  await using main = await RedisServer.start();
  await using alt = await RedisServer.start();
  const config = redisConfig(main.url(), {
    pubsub: {
      channel_prefix: "new:",
      redis_alt: { url: alt.url(), channel_prefix: "old:", ...PING },
    },
  });
  await using shark = await startShark(config);
  const client = await shark.subscriber("books.book_1");
  assert.equal(await main.numsub("new:books.book_1"), 1);
  assert.equal(await alt.numsub("old:books.book_1"), 1);
  await main.publish("new:books.book_1", envelope("books.book_1", { from: "main" }));
  assert.deepEqual((await client.next()).data, { from: "main" });
  await alt.publish("old:books.book_1", envelope("books.book_1", { from: "alt" }));
  assert.deepEqual((await client.next()).data, { from: "alt" });
  await shark.publish({ subscription: "books.book_1", data: { from: "shark" } });
  assert.deepEqual((await client.next()).data, { from: "shark" });
  // Published on both servers, the client would get it twice.
  await client.silence(200);
});

test("two Shark processes sharing one Redis both deliver a message published once through POST /publish", async () => {
  await using redis = await RedisServer.start();
  await using config = await tempFile(
    redisConfig(redis.url(), { server: { host: "127.0.0.1", port: 0 } }),
  );
  await using opened = new AsyncDisposableStack();
  const processes = [0, 1].map(() => opened.use(SharkProcess.spawn(["--config", config.path])));
  const ports = await Promise.all(processes.map((process) => process.listeningPort()));
  const clients: TestClient[] = [];
  for (const port of ports) {
    const client = opened.use(await TestClient.connect(`ws://127.0.0.1:${port}/`));
    clients.push(client);
    await client.subscribe("books.book_1", { author: `node ${port}` });
  }
  const response = await fetch(`http://127.0.0.1:${ports[0]}/publish`, {
    method: "POST",
    headers: { authorization: `Bearer ${SECRET}`, "content-type": "application/json" },
    body: envelope("books.book_1", { title: "Dune" }),
  });
  assert.deepEqual(await response.json(), { status: "ok", published: 1 });
  for (const [index, client] of clients.entries()) {
    const message = await client.next();
    assert.deepEqual(message.data, { title: "Dune" });
    assert.equal(message.author, `node ${ports[index]}`);
  }
  for (const client of clients) await client.silence(100);
  for (const client of clients) await client.close();
  for (const process of processes) {
    const exit = await process.stop();
    assert.equal(exit.code, 0, `graceful shutdown with the redis adapter:\n${exit.stderr}`);
  }
});

test("Redis killed: clients are closed with 1012, their unsubscribe callbacks follow, and /healthz is 503; Redis back: /healthz 200 and delivery works again", async (t) => {
  await using redis = await RedisServer.start();
  await using service = new TestService();
  await using shark = await startShark(redisConfig(redis.url(), {
    services: {
      books: {
        require_authentication: false,
        before_unsubscribe: service.url("/before_unsubscribe"),
        on_unsubscribe: service.url("/on_unsubscribe"),
      },
    },
  }));
  const client = await shark.subscriber("books.book_1");
  assert.equal(await healthStatus(shark), 200);

  await t.step(
    "Redis killed: close 1012, then on_unsubscribe, /healthz 503, nothing accepted",
    async () => {
      await redis.stop({ kill: true });
      const closed = await within(client.closed, 3000, "close after Redis was killed");
      assert.equal(closed.code, 1012);
      const [call] = await service.waitFor("/on_unsubscribe", 1, 1000);
      assert.equal(call.body.subscription, "books.book_1");
      assert.equal(await healthStatus(shark), 503);
      await assert.rejects(shark.connect(), "upgrades are refused while Redis is down");
      await assert.rejects(
        shark.publish({ subscription: "books.book_1", data: {} }),
        /redis is unavailable/,
      );
    },
  );

  await t.step("Redis back: /healthz 200 and delivery works again", async () => {
    await redis.restart();
    await healthy(shark, 5000);
    const later = await shark.subscriber("books.book_1");
    await redis.publish("books.book_1", envelope("books.book_1", { back: true }));
    assert.deepEqual((await later.next()).data, { back: true });
  });
});

test("Redis that stops answering PING within ping_timeout counts as lost (1012, /healthz 503) and Shark recovers when it answers again", async () => {
  await using redis = await RedisServer.start();
  await using shark = await startShark(redisConfig(redis.url()));
  const client = await shark.subscriber("books.book_1");
  const paused = await redis.cli("CLIENT", "PAUSE", "1500");
  assert.equal(paused.stdout, "OK");
  const closed = await within(client.closed, 1400, "close while Redis is paused");
  assert.equal(closed.code, 1012);
  assert.equal(await healthStatus(shark), 503);
  await healthy(shark, 6000);
  const later = await shark.subscriber("books.book_1");
  await redis.publish("books.book_1", envelope("books.book_1", { n: 1 }));
  assert.deepEqual((await later.next()).data, { n: 1 });
});

test("Redis down at start: the process exits non-zero with one clear line naming the URL, password hidden", async (t) => {
  const port = freePort();
  await t.step("exit 1 with one line naming the URL", async () => {
    const url = `redis://127.0.0.1:${port}/0`;
    const result = await runMain(["--adapter", "redis", "--redis-url", url]);
    assert.equal(result.code, 1, result.stderr);
    const lines = result.stderr.split("\n").filter((line) => line.startsWith("shark: "));
    assert.equal(lines.length, 1, result.stderr);
    assert.match(lines[0], new RegExp(`cannot connect to ${url}: .*ECONNREFUSED`));
  });
  await t.step("the URL's password hidden", async () => {
    const secretUrl = `redis://:hunter2@127.0.0.1:${port}/0`;
    const hidden = await runMain(["--adapter", "redis", "--redis-url", secretUrl]);
    assert.equal(hidden.code, 1, hidden.stderr);
    assert.match(hidden.stderr, /cannot connect to redis:\/\/:\*\*\*\*\*@127\.0\.0\.1/);
    assert.ok(!hidden.stderr.includes("hunter2"), hidden.stderr);
  });
});

test("invalid envelopes on a Redis channel are dropped and counted; a valid message right after them is delivered", async () => {
  await using redis = await RedisServer.start();
  await using shark = await startShark(redisConfig(redis.url()));
  const client = await shark.subscriber("books.book_1");
  await redis.publish("books.book_1", "not json {");
  await redis.publish("books.book_1", JSON.stringify({ data: { n: 0 } }));
  await redis.publish("books.book_1", JSON.stringify({ subscription: "books.book_1" }));
  await redis.publish("books.book_1", envelope("books.book_1", { n: 1 }));
  assert.deepEqual((await client.next()).data, { n: 1 });
  await client.silence(100);
  assert.equal(shark.shark.metrics.snapshot()["dropped.invalid"], 3);
  assert.match(
    shark.shark.metrics.prometheus(),
    /shark_messages_dropped_total\{reason="invalid"\} 3/,
  );
});

test("one Redis subscription per topic per process: PUBSUB NUMSUB stays 1 for two clients and drops to 0 when the last one unsubscribes", async () => {
  await using redis = await RedisServer.start();
  await using shark = await startShark(redisConfig(redis.url()));
  const first = await shark.subscriber("books.book_1");
  const second = await shark.subscriber("books.book_1");
  assert.equal(await redis.numsub("books.book_1"), 1);
  const unsubscribe = { event: "unsubscribe", subscription: "books.book_1" };
  assert.equal((await first.request(unsubscribe)).status, "ok");
  await first.silence(100);
  assert.equal(await redis.numsub("books.book_1"), 1);
  assert.equal((await second.request(unsubscribe)).status, "ok");
  await waitUntil(async () => (await redis.numsub("books.book_1")) === 0, 2000, "NUMSUB 0");
});

test("adapter: subscribe resolves once Redis confirmed it, messages arrive with the prefix stripped, calls take effect in order", async () => {
  await using redis = await RedisServer.start();
  await using pubsub = adapter({ channel_prefix: "p:", redis: { url: redis.url() } });
  const { messages, health, listener } = recorder();
  await pubsub.start(listener);
  assert.equal(pubsub.healthy, true);
  await pubsub.subscribe("books.a");
  assert.equal(await redis.numsub("p:books.a"), 1);
  await redis.publish("p:books.a", "payload 1");
  await pubsub.publish("books.a", "payload 2");
  await waitUntil(() => messages.length === 2, 1000, "two messages");
  assert.deepEqual(messages, [["books.a", "payload 1"], ["books.a", "payload 2"]]);

  // Not awaited one by one: they must still reach Redis in call order.
  await Promise.all([
    pubsub.unsubscribe("books.a"),
    pubsub.subscribe("books.a"),
    pubsub.subscribe("books.b"),
    pubsub.unsubscribe("books.b"),
  ]);
  assert.equal(await redis.numsub("p:books.a"), 1);
  assert.equal(await redis.numsub("p:books.b"), 0);
  await pubsub.unsubscribe("books.a");
  assert.equal(await redis.numsub("p:books.a"), 0);
  assert.equal(await redis.publish("p:books.a", "payload 3"), 0);
  assert.deepEqual(health, []);
});

test("adapter: a lost Redis is reported once, subscribe and publish reject meanwhile, and only topics still wanted are subscribed again before health(true)", async (t) => {
  await using redis = await RedisServer.start();
  await using pubsub = adapter({ redis: { url: redis.url(), ...PING } });
  const { messages, health } = await listening(pubsub, "books.kept", "books.dropped");

  await t.step("lost: reported once, subscribe and publish reject", async () => {
    await redis.stop({ kill: true });
    await waitUntil(() => health.length > 0, 2000, "health(false)");
    assert.equal(health[0][0], false);
    assert.match(health[0][1] ?? "", new RegExp(`^redis redis://127.0.0.1:${redis.port}/0: `));
    assert.equal(pubsub.healthy, false);
    await assert.rejects(pubsub.subscribe("books.new"), /redis is unavailable/);
    await assert.rejects(pubsub.publish("books.kept", "x"), /redis is unavailable/);
    await pubsub.unsubscribe("books.dropped");
    // Several reconnect attempts fail meanwhile: still a single health(false).
    await delay(500);
    assert.equal(health.length, 1);
  });

  await t.step(
    "back: only the topics still wanted are subscribed before health(true)",
    async () => {
      await redis.restart();
      await waitUntil(() => health.length === 2, 5000, "health(true)");
      assert.deepEqual(health[1], [true, undefined]);
      assert.equal(pubsub.healthy, true);
      assert.equal(await redis.numsub("books.kept"), 1);
      assert.equal(await redis.numsub("books.dropped"), 0);
      assert.equal(await redis.numsub("books.new"), 0);
      await pubsub.publish("books.kept", "after");
      await waitUntil(() => messages.length === 1, 1000, "message after recovery");
      assert.deepEqual(messages, [["books.kept", "after"]]);
    },
  );
});

test("adapter: start rejects with one clear line naming the URL when Redis (or redis_alt) is unreachable, leaving nothing open", async (t) => {
  await using redis = await RedisServer.start();
  const down = `redis://127.0.0.1:${freePort()}/3`;
  await t.step("redis unreachable", async () => {
    await using mainDown = adapter({ redis: { url: down } });
    await assert.rejects(
      mainDown.start(recorder().listener),
      (error: Error) => error.message.startsWith(`cannot connect to ${down}: `),
    );
  });
  await t.step("redis_alt unreachable", async () => {
    await using altDown = adapter({ redis: { url: redis.url() }, redis_alt: { url: down } });
    await assert.rejects(
      altDown.start(recorder().listener),
      (error: Error) => error.message.startsWith(`cannot connect to ${down} (redis_alt): `),
    );
  });
  await t.step("a database that is not a number", async () => {
    // Past the configuration, which refuses it at load: the adapter checks its own options too.
    const options = loadConfig({ pubsub: { adapter: "redis" } }).pubsub;
    const badDb = new RedisPubSub({
      ...options,
      redis: { ...options.redis, url: "redis://127.0.0.1:1/books" },
    });
    await assert.rejects(badDb.start(recorder().listener), /database "books" is not a number/);
  });
});

test("the password in the redis URL is sent with AUTH; a wrong one fails start with the server's reason, never showing the password", async (t) => {
  const password = "s3cr/t:pass";
  await using redis = await RedisServer.start({ password });
  await t.step("the right password", async () => {
    await using good = adapter({ redis: { url: redis.url(1) } });
    const { messages } = await listening(good, "books.a");
    await good.publish("books.a", "authenticated");
    await waitUntil(() => messages.length === 1, 1000, "message");
  });
  await t.step("a wrong password", async () => {
    const wrongUrl = `redis://:badpassword123@127.0.0.1:${redis.port}/0`;
    const wrong = adapter({ redis: { url: wrongUrl } });
    await assert.rejects(wrong.start(recorder().listener), (error: Error) => {
      assert.match(
        error.message,
        /^cannot connect to redis:\/\/:\*\*\*\*\*@127\.0\.0\.1:\d+\/0: WRONGPASS/,
      );
      assert.ok(!error.message.includes("badpassword123"), error.message);
      return true;
    });
  });
});

Deno.test({
  name:
    'rediss:// with the URL from {"env": NAME}: a Shark process connects over TLS, delivers, and never logs the password',
  ignore: ignoreTls,
  async fn() {
    await using dir = await tempDir("shark_redis_tls_");
    const tls = await makeTlsFiles(dir.path);
    const password = "tls-secret-password";
    await using redis = await RedisServer.start({ password, tls });
    await using config = await tempFile(redisConfig({ env: "SHARK_TEST_REDIS_URL" }, {
      server: { host: "127.0.0.1", port: 0 },
    }));
    await using process = SharkProcess.spawn(["--config", config.path], {
      DENO_CERT: tls.ca,
      SHARK_TEST_REDIS_URL: redis.url(),
    });
    const port = await process.listeningPort();
    await using client = await TestClient.connect(`ws://127.0.0.1:${port}/`);
    await client.subscribe("books.book_1");
    assert.equal(await redis.publish("books.book_1", envelope("books.book_1", { tls: 1 })), 1);
    assert.deepEqual((await client.next()).data, { tls: 1 });
    await client.close();
    const { stderr } = await process.stop();
    assert.match(stderr, /rediss:\/\/:\*\*\*\*\*@127\.0\.0\.1/);
    assert.ok(!stderr.includes(password), stderr);
  },
});

test("adapter: losing redis_alt alone is a loss too (its messages would be missed); health(true) once both servers are back", async () => {
  await using main = await RedisServer.start();
  await using alt = await RedisServer.start();
  await using pubsub = adapter({
    redis: { url: main.url(), ...PING },
    redis_alt: { url: alt.url(), channel_prefix: "old:", ...PING },
  });
  const { messages, health } = await listening(pubsub, "books.a");
  await alt.stop();
  await waitUntil(() => health.length === 1, 2000, "health(false)");
  assert.equal(health[0][0], false);
  assert.match(health[0][1] ?? "", new RegExp(`^redis_alt redis://127.0.0.1:${alt.port}/0: `));
  await alt.restart();
  await waitUntil(() => health.length === 2, 5000, "health(true)");
  assert.deepEqual(health[1], [true, undefined]);
  assert.equal(await alt.numsub("old:books.a"), 1);
  await alt.publish("old:books.a", "from alt");
  await main.publish("books.a", "from main");
  await waitUntil(() => messages.length === 2, 1000, "two messages");
  assert.deepEqual(messages.sort(), [["books.a", "from alt"], ["books.a", "from main"]]);
});

test("adapter: a dropped subscriber or publisher connection (CLIENT KILL) is reported as a loss and replaced", async (t) => {
  await using redis = await RedisServer.start();
  await using pubsub = adapter({ redis: { url: redis.url(), ...PING } });
  const { messages, health } = await listening(pubsub, "books.a");
  for (const type of ["pubsub", "normal"]) {
    await t.step(`${type} connection killed`, async () => {
      const before = health.length;
      const killed = await redis.cli("CLIENT", "KILL", "TYPE", type);
      assert.equal(killed.stdout, "1", `one ${type} connection killed`);
      await waitUntil(() => health.length === before + 2, 5000, `loss and recovery (${type})`);
      assert.equal(health[before][0], false);
      assert.deepEqual(health[before + 1], [true, undefined]);
    });
  }
  assert.equal(await redis.numsub("books.a"), 1);
  await pubsub.publish("books.a", "still here");
  await waitUntil(() => messages.length === 1, 1000, "message");
});

test("adapter: close() while reconnecting stops the loop at once, reports nothing more and leaves no timer or socket", async () => {
  await using redis = await RedisServer.start();
  await using pubsub = adapter({ redis: { url: redis.url(), ...PING } });
  const { health } = await listening(pubsub, "books.a");
  await redis.stop({ kill: true });
  await waitUntil(() => health.length === 1, 2000, "health(false)");
  await within(pubsub.close(), 500, "close() during reconnect");
  assert.equal(pubsub.healthy, false);
  await redis.restart();
  await delay(300);
  assert.equal(health.length, 1);
  assert.equal(await redis.numsub("books.a"), 0);
});

test("adapter: a stalled Shark event loop (a long burst, a GC) is not mistaken for a lost Redis", async () => {
  await using redis = await RedisServer.start();
  await using pubsub = adapter({
    redis: { url: redis.url(), ping_interval: 0.02, ping_timeout: 0.15 },
  });
  const { health } = await listening(pubsub);
  // Stall the event loop far longer than ping_timeout, many times, at
  // random points of the ping cycle: replies wait unread meanwhile.
  for (let i = 0; i < 12; i++) {
    await delay(Math.random() * 25);
    const end = performance.now() + 300;
    while (performance.now() < end) {
      // busy: nothing else runs
    }
  }
  await delay(300);
  assert.deepEqual(health, [], "no loss reported");
  assert.equal(pubsub.healthy, true);
});

test("sharded with url (SPEC 14): the single Redis's SSUBSCRIBE/SPUBLISH; a plain PUBLISH is not delivered, /publish is", async () => {
  await using redis = await RedisServer.start();
  const config = redisConfig(redis.url(), {
    pubsub: { adapter: "redis", redis: { url: redis.url(), sharded: true, ...PING } },
  });
  await using shark = await startShark(config);
  const client = await shark.subscriber("books.book_1");
  assert.equal(await redis.publish("books.book_1", envelope("books.book_1", "plain")), 0);
  const spublished = await redis.cli(
    "SPUBLISH",
    "books.book_1",
    envelope("books.book_1", "sharded"),
  );
  assert.equal(spublished.stdout, "1");
  assert.equal((await client.next()).data, "sharded");
  assert.equal(await shark.publish({ subscription: "books.book_1", data: "api" }), 1);
  assert.equal((await client.next()).data, "api");
  await client.silence(100);
});
