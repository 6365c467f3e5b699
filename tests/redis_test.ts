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
import { runMain, SharkProcess } from "./helpers/process.ts";
import {
  freePort,
  makeTlsFiles,
  opensslAvailable,
  redisAvailable,
  RedisServer,
} from "./helpers/redis_server.ts";
import { TestService } from "./helpers/service.ts";
import { FAST_HTTP, TestShark } from "./helpers/shark.ts";

const ignore = !(await redisAvailable());
const ignoreTls = ignore || !(await opensslAvailable());
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
  return TestShark.start(config, new RedisPubSub(loadConfig(config).pubsub));
}

/** A RedisPubSub built from a `pubsub` section, as main.ts builds it. */
function adapter(pubsub: NonNullable<SharkConfigInput["pubsub"]>): RedisPubSub {
  return new RedisPubSub(loadConfig({ pubsub: { ...pubsub, adapter: "redis" } }).pubsub);
}

/** Resolves with `promise`, or rejects naming `what` after `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `test` every 25 ms until it holds; rejects naming `what` after `ms`. */
async function waitUntil(test: () => boolean | Promise<boolean>, ms: number, what: string) {
  const deadline = Date.now() + ms;
  while (!(await test())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function healthStatus(shark: TestShark): Promise<number> {
  const response = await fetch(shark.url("/healthz"));
  await response.body?.cancel();
  return response.status;
}

function envelope(subscription: string, data: unknown, extra: Record<string, unknown> = {}) {
  return JSON.stringify({ subscription, data, ...extra });
}

async function subscribe(client: TestClient, subscription: string, extra = {}) {
  const reply = await client.request({ event: "subscribe", subscription, ...extra });
  assert.equal(reply.status, "ok", JSON.stringify(reply));
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

/** SIGTERM, then waits (bounded) for the exit and all output. */
async function stopProcess(process: SharkProcess): Promise<{ code: number; stderr: string }> {
  try {
    process.child.kill("SIGTERM");
  } catch {
    // already exited
  }
  return await within(process.exit(), 10_000, "shark process exit");
}

async function stopAll(...items: ({ stop(): Promise<void> } | undefined)[]) {
  for (const item of items) await item?.stop();
}

Deno.test({
  name:
    "a SocketShark publisher's raw `PUBLISH books.book_1 {envelope}` reaches the subscribed client unchanged",
  ignore,
  async fn() {
    const redis = await RedisServer.start();
    let shark: TestShark | undefined;
    let client: TestClient | undefined;
    try {
      shark = await startShark(redisConfig(redis.url(2)));
      client = await shark.connect();
      await subscribe(client, "books.book_1", { author: "ann" });
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
    } finally {
      await client?.close();
      await stopAll(shark, redis);
    }
  },
});

Deno.test({
  name:
    "channel_prefix: a publish on prefix + subscription reaches the client, one without it does not",
  ignore,
  async fn() {
    const redis = await RedisServer.start();
    let shark: TestShark | undefined;
    let client: TestClient | undefined;
    try {
      const config = redisConfig(redis.url(), { pubsub: { channel_prefix: "shark:" } });
      shark = await startShark(config);
      client = await shark.connect();
      await subscribe(client, "books.book_1");
      assert.equal(await redis.numsub("shark:books.book_1"), 1);
      assert.equal(await redis.publish("books.book_1", envelope("books.book_1", { n: 0 })), 0);
      await client.silence(200);
      await redis.publish("shark:books.book_1", envelope("books.book_1", { n: 1 }));
      assert.deepEqual((await client.next()).data, { n: 1 });
      await shark.publish({ subscription: "books.book_1", data: { n: 2 } });
      assert.deepEqual((await client.next()).data, { n: 2 });
    } finally {
      await client?.close();
      await stopAll(shark, redis);
    }
  },
});

Deno.test({
  name:
    "redis_alt: messages published on either server with its own prefix reach the client; publishing goes to the main server only",
  ignore,
  async fn() {
    const main = await RedisServer.start();
    const alt = await RedisServer.start();
    let shark: TestShark | undefined;
    let client: TestClient | undefined;
    try {
      const config = redisConfig(main.url(), {
        pubsub: {
          channel_prefix: "new:",
          redis_alt: { url: alt.url(), channel_prefix: "old:", ...PING },
        },
      });
      shark = await startShark(config);
      client = await shark.connect();
      await subscribe(client, "books.book_1");
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
    } finally {
      await client?.close();
      await stopAll(shark, main, alt);
    }
  },
});

Deno.test({
  name:
    "two Shark processes sharing one Redis both deliver a message published once through POST /publish",
  ignore,
  async fn() {
    const redis = await RedisServer.start();
    const dir = await Deno.makeTempDir({ prefix: "shark_redis_test_" });
    const processes: SharkProcess[] = [];
    const clients: TestClient[] = [];
    try {
      const file = `${dir}/shark.json`;
      await Deno.writeTextFile(
        file,
        JSON.stringify(redisConfig(redis.url(), { server: { host: "127.0.0.1", port: 0 } })),
      );
      for (let i = 0; i < 2; i++) processes.push(SharkProcess.spawn(["--config", file]));
      const ports = await Promise.all(processes.map((process) => process.listeningPort()));
      for (const port of ports) {
        const client = await TestClient.connect(`ws://127.0.0.1:${port}/`);
        clients.push(client);
        await subscribe(client, "books.book_1", { author: `node ${port}` });
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
      for (const process of processes.splice(0)) {
        const exit = await stopProcess(process);
        assert.equal(exit.code, 0, `graceful shutdown with the redis adapter:\n${exit.stderr}`);
      }
    } finally {
      for (const client of clients) await client.close();
      for (const process of processes) await stopProcess(process);
      await redis.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "Redis killed: clients are closed with 1012, their unsubscribe callbacks follow, and /healthz is 503; Redis back: /healthz 200 and delivery works again",
  ignore,
  async fn() {
    const redis = await RedisServer.start();
    const service = new TestService();
    let shark: TestShark | undefined;
    let client: TestClient | undefined;
    let later: TestClient | undefined;
    try {
      shark = await startShark(redisConfig(redis.url(), {
        services: {
          books: {
            require_authentication: false,
            before_unsubscribe: service.url("/before_unsubscribe"),
            on_unsubscribe: service.url("/on_unsubscribe"),
          },
        },
      }));
      client = await shark.connect();
      await subscribe(client, "books.book_1");
      assert.equal(await healthStatus(shark), 200);

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

      await redis.restart();
      await waitUntil(async () => (await healthStatus(shark!)) === 200, 5000, "/healthz 200");
      later = await shark.connect();
      await subscribe(later, "books.book_1");
      await redis.publish("books.book_1", envelope("books.book_1", { back: true }));
      assert.deepEqual((await later.next()).data, { back: true });
    } finally {
      await client?.close();
      await later?.close();
      await stopAll(shark, redis);
      await service.close();
    }
  },
});

Deno.test({
  name:
    "Redis that stops answering PING within ping_timeout counts as lost (1012, /healthz 503) and Shark recovers when it answers again",
  ignore,
  async fn() {
    const redis = await RedisServer.start();
    let shark: TestShark | undefined;
    let client: TestClient | undefined;
    let later: TestClient | undefined;
    try {
      shark = await startShark(redisConfig(redis.url()));
      client = await shark.connect();
      await subscribe(client, "books.book_1");
      const paused = await redis.cli("CLIENT", "PAUSE", "1500");
      assert.equal(paused.stdout, "OK");
      const closed = await within(client.closed, 1400, "close while Redis is paused");
      assert.equal(closed.code, 1012);
      assert.equal(await healthStatus(shark), 503);
      await waitUntil(async () => (await healthStatus(shark!)) === 200, 6000, "/healthz 200");
      later = await shark.connect();
      await subscribe(later, "books.book_1");
      await redis.publish("books.book_1", envelope("books.book_1", { n: 1 }));
      assert.deepEqual((await later.next()).data, { n: 1 });
    } finally {
      await client?.close();
      await later?.close();
      await stopAll(shark, redis);
    }
  },
});

Deno.test({
  name:
    "Redis down at start: the process exits non-zero with one clear line naming the URL, password hidden",
  ignore,
  async fn() {
    const port = freePort();
    const url = `redis://127.0.0.1:${port}/0`;
    const result = await runMain(["--adapter", "redis", "--redis-url", url]);
    assert.equal(result.code, 1, result.stderr);
    const lines = result.stderr.split("\n").filter((line) => line.startsWith("shark: "));
    assert.equal(lines.length, 1, result.stderr);
    assert.match(lines[0], new RegExp(`cannot connect to ${url}: .*ECONNREFUSED`));

    const secretUrl = `redis://:hunter2@127.0.0.1:${port}/0`;
    const hidden = await runMain(["--adapter", "redis", "--redis-url", secretUrl]);
    assert.equal(hidden.code, 1, hidden.stderr);
    assert.match(hidden.stderr, /cannot connect to redis:\/\/:\*\*\*\*\*@127\.0\.0\.1/);
    assert.ok(!hidden.stderr.includes("hunter2"), hidden.stderr);
  },
});

Deno.test({
  name:
    "invalid envelopes on a Redis channel are dropped and counted; a valid message right after them is delivered",
  ignore,
  async fn() {
    const redis = await RedisServer.start();
    let shark: TestShark | undefined;
    let client: TestClient | undefined;
    try {
      shark = await startShark(redisConfig(redis.url()));
      client = await shark.connect();
      await subscribe(client, "books.book_1");
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
    } finally {
      await client?.close();
      await stopAll(shark, redis);
    }
  },
});

Deno.test({
  name:
    "one Redis subscription per topic per process: PUBSUB NUMSUB stays 1 for two clients and drops to 0 when the last one unsubscribes",
  ignore,
  async fn() {
    const redis = await RedisServer.start();
    let shark: TestShark | undefined;
    const clients: TestClient[] = [];
    try {
      shark = await startShark(redisConfig(redis.url()));
      for (let i = 0; i < 2; i++) {
        const client = await shark.connect();
        clients.push(client);
        await subscribe(client, "books.book_1");
      }
      assert.equal(await redis.numsub("books.book_1"), 1);
      const unsubscribe = { event: "unsubscribe", subscription: "books.book_1" };
      assert.equal((await clients[0].request(unsubscribe)).status, "ok");
      await clients[0].silence(100);
      assert.equal(await redis.numsub("books.book_1"), 1);
      assert.equal((await clients[1].request(unsubscribe)).status, "ok");
      await waitUntil(async () => (await redis.numsub("books.book_1")) === 0, 2000, "NUMSUB 0");
    } finally {
      for (const client of clients) await client.close();
      await stopAll(shark, redis);
    }
  },
});

Deno.test({
  name:
    "adapter: subscribe resolves once Redis confirmed it, messages arrive with the prefix stripped, calls take effect in order",
  ignore,
  async fn() {
    const redis = await RedisServer.start();
    const pubsub = adapter({ channel_prefix: "p:", redis: { url: redis.url() } });
    try {
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
    } finally {
      await pubsub.close();
      await redis.stop();
    }
  },
});

Deno.test({
  name:
    "adapter: a lost Redis is reported once, subscribe and publish reject meanwhile, and only topics still wanted are subscribed again before health(true)",
  ignore,
  async fn() {
    const redis = await RedisServer.start();
    const pubsub = adapter({ redis: { url: redis.url(), ...PING } });
    try {
      const { messages, health, listener } = recorder();
      await pubsub.start(listener);
      await pubsub.subscribe("books.kept");
      await pubsub.subscribe("books.dropped");

      await redis.stop({ kill: true });
      await waitUntil(() => health.length > 0, 2000, "health(false)");
      assert.equal(health[0][0], false);
      assert.match(health[0][1] ?? "", new RegExp(`^redis redis://127.0.0.1:${redis.port}/0: `));
      assert.equal(pubsub.healthy, false);
      await assert.rejects(pubsub.subscribe("books.new"), /redis is unavailable/);
      await assert.rejects(pubsub.publish("books.kept", "x"), /redis is unavailable/);
      await pubsub.unsubscribe("books.dropped");
      // Several reconnect attempts fail meanwhile: still a single health(false).
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.equal(health.length, 1);

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
    } finally {
      await pubsub.close();
      await redis.stop();
    }
  },
});

Deno.test({
  name:
    "adapter: start rejects with one clear line naming the URL when Redis (or redis_alt) is unreachable, leaving nothing open",
  ignore,
  async fn() {
    const redis = await RedisServer.start();
    try {
      const down = `redis://127.0.0.1:${freePort()}/3`;
      const mainDown = adapter({ redis: { url: down } });
      await assert.rejects(
        mainDown.start(recorder().listener),
        (error: Error) => error.message.startsWith(`cannot connect to ${down}: `),
      );
      await mainDown.close();
      const altDown = adapter({ redis: { url: redis.url() }, redis_alt: { url: down } });
      await assert.rejects(
        altDown.start(recorder().listener),
        (error: Error) => error.message.startsWith(`cannot connect to ${down} (redis_alt): `),
      );
      await altDown.close();
      const badDb = adapter({ redis: { url: "redis://127.0.0.1:1/books" } });
      await assert.rejects(badDb.start(recorder().listener), /database "books" is not a number/);
    } finally {
      await redis.stop();
    }
  },
});

Deno.test({
  name:
    "the password in the redis URL is sent with AUTH; a wrong one fails start with the server's reason, never showing the password",
  ignore,
  async fn() {
    const password = "s3cr/t:pass";
    const redis = await RedisServer.start({ password });
    const good = adapter({ redis: { url: redis.url(1) } });
    try {
      const { messages, listener } = recorder();
      await good.start(listener);
      await good.subscribe("books.a");
      await good.publish("books.a", "authenticated");
      await waitUntil(() => messages.length === 1, 1000, "message");
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
    } finally {
      await good.close();
      await redis.stop();
    }
  },
});

Deno.test({
  name:
    'rediss:// with the URL from {"env": NAME}: a Shark process connects over TLS, delivers, and never logs the password',
  ignore: ignoreTls,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shark_redis_tls_" });
    let redis: RedisServer | undefined;
    let process: SharkProcess | undefined;
    let client: TestClient | undefined;
    try {
      const tls = await makeTlsFiles(dir);
      const password = "tls-secret-password";
      redis = await RedisServer.start({ password, tls });
      const file = `${dir}/shark.json`;
      const config = redisConfig({ env: "SHARK_TEST_REDIS_URL" }, {
        server: { host: "127.0.0.1", port: 0 },
      });
      await Deno.writeTextFile(file, JSON.stringify(config));
      process = SharkProcess.spawn(["--config", file], {
        DENO_CERT: tls.ca,
        SHARK_TEST_REDIS_URL: redis.url(),
      });
      const port = await process.listeningPort();
      client = await TestClient.connect(`ws://127.0.0.1:${port}/`);
      await subscribe(client, "books.book_1");
      assert.equal(await redis.publish("books.book_1", envelope("books.book_1", { tls: 1 })), 1);
      assert.deepEqual((await client.next()).data, { tls: 1 });
      await client.close();
      const { stderr } = await stopProcess(process);
      process = undefined;
      assert.match(stderr, /rediss:\/\/:\*\*\*\*\*@127\.0\.0\.1/);
      assert.ok(!stderr.includes(password), stderr);
    } finally {
      await client?.close();
      if (process) await stopProcess(process);
      await redis?.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "adapter: losing redis_alt alone is a loss too (its messages would be missed); health(true) once both servers are back",
  ignore,
  async fn() {
    const main = await RedisServer.start();
    const alt = await RedisServer.start();
    const pubsub = adapter({
      redis: { url: main.url(), ...PING },
      redis_alt: { url: alt.url(), channel_prefix: "old:", ...PING },
    });
    try {
      const { messages, health, listener } = recorder();
      await pubsub.start(listener);
      await pubsub.subscribe("books.a");
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
    } finally {
      await pubsub.close();
      await main.stop();
      await alt.stop();
    }
  },
});

Deno.test({
  name:
    "adapter: a dropped subscriber or publisher connection (CLIENT KILL) is reported as a loss and replaced",
  ignore,
  async fn() {
    const redis = await RedisServer.start();
    const pubsub = adapter({ redis: { url: redis.url(), ...PING } });
    try {
      const { messages, health, listener } = recorder();
      await pubsub.start(listener);
      await pubsub.subscribe("books.a");
      for (const type of ["pubsub", "normal"]) {
        const before = health.length;
        const killed = await redis.cli("CLIENT", "KILL", "TYPE", type);
        assert.equal(killed.stdout, "1", `one ${type} connection killed`);
        await waitUntil(() => health.length === before + 2, 5000, `loss and recovery (${type})`);
        assert.equal(health[before][0], false);
        assert.deepEqual(health[before + 1], [true, undefined]);
      }
      assert.equal(await redis.numsub("books.a"), 1);
      await pubsub.publish("books.a", "still here");
      await waitUntil(() => messages.length === 1, 1000, "message");
    } finally {
      await pubsub.close();
      await redis.stop();
    }
  },
});

Deno.test({
  name:
    "adapter: close() while reconnecting stops the loop at once, reports nothing more and leaves no timer or socket",
  ignore,
  async fn() {
    const redis = await RedisServer.start();
    const pubsub = adapter({ redis: { url: redis.url(), ...PING } });
    try {
      const { health, listener } = recorder();
      await pubsub.start(listener);
      await pubsub.subscribe("books.a");
      await redis.stop({ kill: true });
      await waitUntil(() => health.length === 1, 2000, "health(false)");
      await within(pubsub.close(), 500, "close() during reconnect");
      assert.equal(pubsub.healthy, false);
      await redis.restart();
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(health.length, 1);
      assert.equal(await redis.numsub("books.a"), 0);
    } finally {
      await pubsub.close();
      await redis.stop();
    }
  },
});

Deno.test({
  name: "adapter: a stalled Shark event loop (a long burst, a GC) is not mistaken for a lost Redis",
  ignore,
  async fn() {
    const redis = await RedisServer.start();
    const pubsub = adapter({
      redis: { url: redis.url(), ping_interval: 0.02, ping_timeout: 0.15 },
    });
    try {
      const { health, listener } = recorder();
      await pubsub.start(listener);
      // Stall the event loop far longer than ping_timeout, many times, at
      // random points of the ping cycle: replies wait unread meanwhile.
      for (let i = 0; i < 12; i++) {
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 25));
        const end = performance.now() + 300;
        while (performance.now() < end) {
          // busy: nothing else runs
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.deepEqual(health, [], "no loss reported");
      assert.equal(pubsub.healthy, true);
    } finally {
      await pubsub.close();
      await redis.stop();
    }
  },
});
