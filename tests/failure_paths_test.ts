/**
 * Failure paths (SPEC sections 1, 2, 3, 5 and 8): what Shark does when
 * something goes wrong half-way — a subscribe that fails after joining its
 * topic, a pub/sub loss while services hang, a shutdown right after clients
 * left, a publish that fails mid-array, a service that redirects or rate
 * limits a closed session — and what never reaches a log line. Each rule
 * closes fast, cleans up always, and leaks nothing.
 */
import assert from "node:assert/strict";
import { getLogger, type Logger } from "@logtape/logtape";
import { RedisPubSub } from "../adapters/redis.ts";
import {
  FetchCallbackHttp,
  InvalidEnvelope,
  loadConfig,
  MemoryPubSub,
  type PubSubListener,
  type SharkConfigInput,
} from "../mod.ts";
import { TestClient } from "./helpers/client.ts";
import { freePort } from "./helpers/loopback.ts";
import { SharkProcess } from "./helpers/process.ts";
import { redisAvailable, RedisServer } from "./helpers/redis_server.ts";
import { slowly, TestService } from "./helpers/service.ts";
import { TestShark } from "./helpers/shark.ts";
import { tempFile } from "./helpers/temp.ts";
import { delay, waitUntil, within } from "./helpers/wait.ts";

const noRedis = !(await redisAvailable());

/** Waits for a stderr line of `shark` (JSON or text format) matching `test`. */
function lineOf(shark: SharkProcess, test: (line: string) => boolean): Promise<string> {
  return waitUntil(
    () => shark.lines.find(test),
    10_000,
    () => `log line not seen; stderr:\n${shark.lines.join("\n")}`,
  );
}

/** Subscribes a new client to each of `subscriptions`, each answered `Service unavailable.`. */
async function subscribeUnavailable(port: number, ...subscriptions: string[]): Promise<void> {
  await using client = await TestClient.connect(`ws://127.0.0.1:${port}/`);
  for (const subscription of subscriptions) {
    const reply = await client.request({ event: "subscribe", subscription });
    assert.equal(reply.error, "Service unavailable.", subscription);
  }
}

Deno.test("a subscription name over 256 characters or with control characters is `Invalid subscription format.`, for clients and publishers alike", async (t) => {
  await using shark = await TestShark.start({
    services: { books: { require_authentication: false } },
  });
  const client = await shark.connect();
  await t.step("refused by every event and by publish()", async () => {
    const bad = [
      `books.${"x".repeat(251)}`,
      "books.a\n2026-01-01 [ERR] forged",
      "books.a\u0000b",
      "books.a\u007f",
      "books.a\u0085",
      "books.a\u2028",
      "books.\ud800",
    ];
    for (const name of bad) {
      for (const event of ["subscribe", "message", "unsubscribe"]) {
        assert.deepEqual(await client.request({ event, subscription: name }), {
          event,
          status: "error",
          error: "Invalid subscription format.",
          subscription: name,
        }, `${event} ${JSON.stringify(name)}`);
      }
      await assert.rejects(shark.publish({ subscription: name, data: {} }), /SERVICE\.TOPIC/);
    }
  });
  await t.step("256 characters, and any printable Unicode, are fine", async () => {
    await client.subscribe(`books.${"x".repeat(250)}`);
    await client.subscribe("books.ünïcödé 📚 spaced");
  });
});

Deno.test("log lines never carry raw control characters: a newline in a service's error cannot forge a line in the text format", async () => {
  const forged = "2026-01-01 00:00:00.000 +00:00 [FTL] shark: forged";
  await using service = new TestService({
    "/heartbeat": { status: "error", error: `down\n${forged}\u0007` },
  });
  await using config = await tempFile({
    server: { port: 0 },
    log: { format: "text" },
    services: {
      books: {
        require_authentication: false,
        heartbeat_period: 0.1,
        on_heartbeat: service.url("/heartbeat"),
      },
    },
  });
  await using shark = SharkProcess.spawn(["--config", config.path]);
  const listening = await lineOf(shark, (line) => /listening on/.test(line));
  await using client = await TestClient.connect(
    `ws://127.0.0.1:${listening.match(/(\d+)\D*$/)?.[1]}/`,
  );
  await client.subscribe("books.1");
  const line = await lineOf(shark, (line) => line.includes("heartbeat of"));
  assert.ok(line.includes("\\n2026-01-01"), line);
  assert.ok(!shark.lines.some((line) => line.startsWith(forged)), shark.lines.join("\n"));
  assert.ok(!shark.lines.some((line) => /\p{Cc}/u.test(line)));
});

Deno.test("tokens in a callback URL's query, its userinfo, and the URL inside a fetch error never reach the logs", async () => {
  await using service = new TestService({ "/fails": new Response("down", { status: 503 }) });
  const failing = service.url("/fails?token=QUERY-SECRET&plain=visible-value").replace(
    "//",
    "//svc:USERINFO-SECRET@",
  );
  const unreachable = `http://127.0.0.1:${freePort()}/auth?api_key=FETCH-SECRET`;
  await using config = await tempFile({
    server: { port: 0 },
    log: { level: "debug" },
    http: { timeout: 1, tries: 2, wait: 0.01 },
    services: {
      books: { require_authentication: false, before_subscribe: failing },
      maps: { require_authentication: false, authorizer: unreachable },
    },
  });
  await using shark = SharkProcess.spawn(["--config", config.path]);
  await subscribeUnavailable(await shark.listeningPort(), "books.1", "maps.1");
  const refused = await shark.waitForLog((line) =>
    line.properties?.callback === "authorizer" && line.properties?.attempt === 2
  );
  assert.match(String(refused.properties?.error), /onnection refused|ECONNREFUSED/);
  const failed = await shark.waitForLog((line) =>
    line.properties?.callback === "before_subscribe" && line.properties?.attempt === 2
  );
  assert.equal(
    failed.properties?.url,
    `${service.origin.replace("//", "//*****:*****@")}/fails?token=*****&plain=*****`,
  );
  const logs = shark.lines.join("\n");
  for (const secret of ["QUERY-SECRET", "visible-value", "USERINFO-SECRET", "FETCH-SECRET"]) {
    assert.ok(!logs.includes(secret), `${secret} logged:\n${logs}`);
  }
});

Deno.test("a service's 3xx is not followed: it is a failed try, logged with the Location's origin only", async () => {
  await using elsewhere = new TestService();
  await using service = new TestService({
    "/moved": () =>
      new Response(null, {
        status: 302,
        headers: { location: elsewhere.url("/hook?token=LOCATION-SECRET") },
      }),
    "/temporary": () =>
      new Response(null, { status: 307, headers: { location: elsewhere.url("/hook") } }),
  });
  await using config = await tempFile({
    server: { port: 0 },
    http: { timeout: 1, tries: 2, wait: 0.01 },
    services: {
      books: {
        require_authentication: false,
        before_subscribe: service.url("/moved").replace("//", "//svc:pw@"),
      },
      maps: { require_authentication: false, before_subscribe: service.url("/temporary") },
    },
  });
  await using shark = SharkProcess.spawn(["--config", config.path]);
  await subscribeUnavailable(await shark.listeningPort(), "books.1", "maps.1");
  assert.deepEqual(elsewhere.calls, [], "the other origin never hears of it");
  assert.deepEqual(service.paths(), ["/moved", "/moved", "/temporary", "/temporary"]);
  const line = await shark.waitForLog((line) => line.properties?.callback === "before_subscribe");
  assert.equal(
    line.properties?.error,
    `HTTP status 302, a redirect to ${elsewhere.origin} (not followed)`,
  );
  assert.ok(!shark.lines.join("\n").includes("LOCATION-SECRET"));
});

Deno.test("the URL inside a fetch error is redacted before it is logged", async () => {
  const warnings: Record<string, unknown>[] = [];
  const logger = new Proxy(getLogger(["shark-test"]), {
    get(target, property) {
      if (property === "warn") {
        return (_: string, properties: Record<string, unknown>) => warnings.push(properties);
      }
      if (property === "with") return () => logger;
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const unreachable = `http://127.0.0.1:${freePort()}/auth?api_key=FETCH-SECRET`;
  await using shark = await TestShark.start({
    services: { maps: { require_authentication: false, authorizer: unreachable } },
  }, { logger, callbackHttp: new FetchCallbackHttp() });
  const client = await shark.connect();
  const reply = await client.request({ event: "subscribe", subscription: "maps.1" });
  assert.equal(reply.error, "Service unavailable.");
  const error = String(warnings.find((line) => line.callback === "authorizer")?.error);
  assert.match(error, /onnection refused/);
  assert.match(error, /api_key=\*\*\*\*\*/);
  assert.ok(!JSON.stringify(warnings).includes("FETCH-SECRET"));
});

/**
 * A logger that logs at every level and throws on the debug line `fails`
 * picks: an unexpected internal failure at a chosen point.
 */
function failingLogger(
  logger: Logger,
  fails: (properties: Record<string, unknown>) => boolean,
): Logger {
  return new Proxy(logger, {
    get(target, property) {
      if (property === "isEnabledFor") return () => true;
      if (property === "debug") {
        return (message: string, properties: Record<string, unknown> = {}) => {
          if (fails(properties)) throw new Error("injected failure");
          target.debug(message, properties);
        };
      }
      if (property === "with") {
        return (properties: Record<string, unknown>) =>
          failingLogger(target.with(properties), fails);
      }
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

Deno.test("a subscribe that fails unexpectedly after joining its topic leaves nothing behind: topic unsubscribed, held messages freed, on_unsubscribe sent", async () => {
  await using service = new TestService({ "/before_subscribe": slowly(200) });
  // Shark fails right after the service confirmed before_subscribe.
  const logger = failingLogger(
    getLogger(["shark-test"]),
    (properties) => properties.callback === "before_subscribe",
  );
  await using shark = await TestShark.start({
    services: {
      books: {
        require_authentication: false,
        before_subscribe: service.url("/before_subscribe"),
        before_unsubscribe: service.url("/before_unsubscribe"),
        on_unsubscribe: service.url("/on_unsubscribe"),
      },
    },
  }, { logger });
  const client = await shark.connect();
  client.send({ event: "subscribe", subscription: "books.1" });
  await service.waitFor("/before_subscribe");
  await shark.publish({ subscription: "books.1", data: "held while subscribing" });
  assert.deepEqual(await client.next(), {
    event: "subscribe",
    status: "error",
    error: "Unhandled exception.",
    subscription: "books.1",
  });
  assert.equal((await client.closed).code, 1011);
  await service.waitFor("/on_unsubscribe");
  assert.deepEqual(service.paths(), [
    "/before_subscribe",
    "/before_unsubscribe",
    "/on_unsubscribe",
  ]);
  const metrics = shark.shark.metrics;
  assert.equal(metrics.topicsOpen, 0, "topic given up");
  assert.equal(metrics.subscriptionsOpen, 0);
  const received = metrics.received;
  await shark.publish({ subscription: "books.1", data: "nobody listens" });
  assert.equal(metrics.received, received, "the adapter no longer carries the topic");
});

Deno.test("a failed re-authorization tells the client at once, without waiting for on_unsubscribe; its messages meanwhile get Subscription does not exist.", async () => {
  let authorizations = 0;
  await using service = new TestService({
    "/authorizer": () =>
      ++authorizations === 1 ? { status: "ok" } : { status: "error", error: "Revoked." },
    "/before_unsubscribe": slowly(300, { status: "ok", data: { bye: true } }),
    "/on_unsubscribe": slowly(3000),
  });
  await using shark = await TestShark.start({
    http: { timeout: 5, tries: 1, wait: 0 },
    services: {
      books: {
        require_authentication: false,
        extra_fields: ["shelf"],
        authorizer: service.url("/authorizer"),
        authorization_renewal_period: 0.2,
        on_message: service.url("/on_message"),
        before_unsubscribe: service.url("/before_unsubscribe"),
        on_unsubscribe: service.url("/on_unsubscribe"),
      },
    },
  });
  const client = await shark.subscriber("books.1", { shelf: "s1" });
  const [ending] = await service.waitFor("/before_unsubscribe");
  assert.deepEqual(
    await client.request({ event: "message", subscription: "books.1", data: {} }),
    {
      event: "message",
      status: "error",
      error: "Subscription does not exist.",
      subscription: "books.1",
    },
  );
  assert.deepEqual(await client.next(1500), {
    event: "unsubscribe",
    subscription: "books.1",
    data: { bye: true },
    error: "Revoked.",
    shelf: "s1",
  });
  assert.ok(performance.now() - ending.at < 1500, "told before on_unsubscribe answered");
  await service.waitFor("/on_unsubscribe");
  assert.deepEqual(service.bodies("/on_message"), [], "nothing reached on_message");
});

Deno.test("a publish with an envelope that cannot be serialized publishes nothing of the request: InvalidEnvelope naming it", async () => {
  await using shark = await TestShark.start({
    services: { books: { require_authentication: false } },
  });
  const client = await shark.subscriber("books.1");
  await assert.rejects(
    shark.publish([
      { subscription: "books.1", data: "first" },
      { subscription: "books.1", data: { big: 1n } },
    ]),
    (error: Error) => error instanceof InvalidEnvelope && /^envelope 1: /.test(error.message),
  );
  await client.silence(200);
  assert.equal(shark.shark.metrics.published, 0);
});

/** The memory adapter, but a publish of a payload containing `fail` is refused after a while. */
class FlakyPubSub extends MemoryPubSub {
  override async publish(topic: string, payload: string): Promise<void> {
    await delay(payload.includes("fail") ? 10 : 100);
    if (payload.includes("fail")) throw new Error("backend refused it");
    return super.publish(topic, payload);
  }
}

Deno.test("a publish that fails for one envelope of an array settles once every envelope has, counting those that went out", async () => {
  await using shark = await TestShark.start(
    { services: { books: { require_authentication: false } }, delivery: { metadata: false } },
    { pubsub: new FlakyPubSub() },
  );
  const client = await shark.subscriber("books.1");
  const envelopes = ["a", "fail", "c"].map((data) => ({ subscription: "books.1", data }));
  await assert.rejects(
    shark.publish(envelopes),
    /^Error: 2 of 3 envelopes published; envelope 1: backend refused it$/,
  );
  assert.equal(shark.shark.metrics.published, 2);
  assert.deepEqual((await client.take(2)).map((message) => message.data), ["a", "c"]);
});

/** A TCP proxy to `port` that accepts at once but passes nothing on until `open()`. */
function gatedProxy(port: number) {
  const gate = Promise.withResolvers<void>();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  (async () => {
    for await (const client of listener) {
      conns.push(client);
      gate.promise.then(async () => {
        const server = await Deno.connect({ hostname: "127.0.0.1", port });
        conns.push(server);
        client.readable.pipeTo(server.writable).catch(() => {});
        server.readable.pipeTo(client.writable).catch(() => {});
      });
    }
  })().catch(() => {});
  return {
    port: listener.addr.port,
    open: () => gate.resolve(),
    [Symbol.dispose]() {
      listener.close();
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // closed by its peer
        }
      }
    },
  };
}

Deno.test({
  name:
    "redis_alt: the main server lost while redis_alt is still connecting leaves the adapter unhealthy, until the main server is back",
  ignore: noRedis,
  async fn() {
    await using main = await RedisServer.start();
    await using alt = await RedisServer.start();
    using slowAlt = gatedProxy(alt.port);
    const ping = { ping_interval: 0.2, ping_timeout: 3 };
    const pubsub = new RedisPubSub(
      loadConfig({
        pubsub: {
          adapter: "redis",
          redis: { url: main.url(), ...ping },
          redis_alt: {
            url: `redis://127.0.0.1:${slowAlt.port}/0`,
            channel_prefix: "old:",
            ...ping,
          },
        },
      }).pubsub,
    );
    await using closing = new AsyncDisposableStack();
    closing.defer(() => pubsub.close());
    const health: boolean[] = [];
    const listener: PubSubListener = { message() {}, health: (healthy) => health.push(healthy) };
    const started = pubsub.start(listener);
    // The main server's subscriber and publisher have answered their PING: it is up.
    await waitUntil(
      async () => {
        const clients = (await main.cli("CLIENT", "LIST")).stdout;
        return clients.split("\n").filter((line) => line.includes("cmd=ping")).length === 2;
      },
      3000,
      "main server up",
    );
    await main.stop({ kill: true });
    await delay(200);
    slowAlt.open();
    await started;
    assert.equal(pubsub.healthy, false, "not healthy while the main server is down");
    await main.restart();
    await waitUntil(() => health.includes(true), 5000, "health(true) once main is back");
    assert.equal(pubsub.healthy, true);
  },
});

Deno.test({
  name:
    "pub/sub loss closes every client with 1012 within ping_interval + ping_timeout + 1 s even when every unsubscribe callback hangs; the callbacks still run afterwards",
  ignore: noRedis,
  async fn() {
    await using redis = await RedisServer.start();
    await using service = new TestService({
      "/before_unsubscribe": slowly(4000),
      "/on_unsubscribe": slowly(4000),
    });
    const ping = { ping_interval: 0.2, ping_timeout: 0.5 };
    const config: SharkConfigInput = {
      http: { timeout: 10, tries: 1, wait: 0 },
      pubsub: { adapter: "redis", redis: { url: redis.url(), ...ping } },
      services: {
        books: {
          require_authentication: false,
          before_unsubscribe: service.url("/before_unsubscribe"),
          on_unsubscribe: service.url("/on_unsubscribe"),
        },
      },
    };
    await using shark = await TestShark.start(config, {
      pubsub: new RedisPubSub(loadConfig(config).pubsub),
    });
    const clients = [await shark.connect(), await shark.connect()];
    for (const [i, client] of clients.entries()) {
      for (const topic of ["a", "b"]) await client.subscribe(`books.${i}${topic}`);
    }
    const lost = performance.now();
    assert.equal((await redis.cli("CLIENT", "PAUSE", "3000")).stdout, "OK");
    const bound = (ping.ping_interval + ping.ping_timeout + 1) * 1000;
    for (const client of clients) {
      const closed = await within(client.closed, bound + 500, "close after Redis was paused");
      assert.equal(closed.code, 1012);
    }
    const took = performance.now() - lost;
    assert.ok(took < bound, `closed after ${Math.round(took)} ms`);
    await service.waitFor("/on_unsubscribe", 4, 10_000);
    assert.equal(service.bodies("/before_unsubscribe").length, 4);
  },
});

Deno.test("callbacks to one origin never exceed http.max_concurrent in flight; the others wait their turn, counted in shark_callbacks_queued", async () => {
  let inFlight = 0;
  let most = 0;
  await using service = new TestService({
    "/on_unsubscribe": async () => {
      most = Math.max(most, ++inFlight);
      await delay(150);
      inFlight--;
      return { status: "ok" };
    },
  });
  await using shark = await TestShark.start({
    http: { timeout: 5, tries: 1, wait: 0, max_concurrent: 2 },
    services: {
      books: { require_authentication: false, on_unsubscribe: service.url("/on_unsubscribe") },
    },
  });
  const clients = await Promise.all([...Array(6)].map(() => shark.connect()));
  for (const [i, client] of clients.entries()) await client.subscribe(`books.${i}`);
  await Promise.all(clients.map((client) => client.close()));
  await service.waitFor("/on_unsubscribe", 2);
  await waitUntil(
    () => shark.shark.metrics.prometheus().includes("shark_callbacks_queued 4"),
    1000,
    "four callbacks waiting",
  );
  await service.waitFor("/on_unsubscribe", 6);
  await waitUntil(() => shark.shark.metrics.callbacksQueued === 0, 1000, "line empty");
  assert.equal(most, 2);
});

Deno.test("a closed session's callbacks stop waiting (a 429's reset, the wait between tries), while its unsubscribe callbacks are still sent", async () => {
  let unsubscribes = 0;
  const limited = (seconds: string) =>
    new Response("slow down", { status: 429, headers: { "X-Rate-Limit-Reset": seconds } });
  await using service = new TestService({
    "/on_message": () => limited("3600"),
    "/on_heartbeat": () => new Response("down", { status: 503 }),
    "/on_unsubscribe": () => ++unsubscribes === 1 ? limited("0.3") : { status: "ok" },
  });
  await using shark = await TestShark.start({
    http: { timeout: 2, tries: 3, wait: 3600 },
    services: {
      books: {
        require_authentication: false,
        on_message: service.url("/on_message"),
        heartbeat_period: 0.05,
        on_heartbeat: service.url("/on_heartbeat"),
        on_unsubscribe: service.url("/on_unsubscribe"),
      },
    },
  });
  const client = await shark.subscriber("books.1");
  client.send({ event: "message", subscription: "books.1", data: {} });
  await service.waitFor("/on_message");
  await service.waitFor("/on_heartbeat");
  const closed = performance.now();
  await client.close();
  const snapshot = () => shark.shark.metrics.snapshot();
  await waitUntil(
    () => snapshot()["callbacks.on_message.cancelled"] === 1,
    1000,
    "on_message given up",
  );
  await waitUntil(
    () => snapshot()["callbacks.on_heartbeat.cancelled"] === 1,
    1000,
    "on_heartbeat given up",
  );
  await waitUntil(() => snapshot()["callbacks.on_unsubscribe.ok"] === 1, 2000, "unsubscribed");
  assert.ok(performance.now() - closed < 2000);
  assert.equal(service.bodies("/on_message").length, 1, "no second try");
  assert.equal(service.bodies("/on_unsubscribe").length, 2, "the 429 was waited out");
});

Deno.test("shutdown waits for sessions that closed just before it too: their on_unsubscribe completes, not aborted", async () => {
  await using service = new TestService({ "/on_unsubscribe": slowly(500) });
  await using shark = await TestShark.start({
    http: { timeout: 5, tries: 1, wait: 0 },
    services: {
      books: { require_authentication: false, on_unsubscribe: service.url("/on_unsubscribe") },
    },
  });
  const client = await shark.subscriber("books.1");
  await client.close();
  await service.waitFor("/on_unsubscribe");
  assert.equal(shark.shark.connections, 0, "the session is already gone");
  await shark.shark.shutdown();
  assert.equal(shark.shark.metrics.snapshot()["callbacks.on_unsubscribe.ok"], 1);
});
