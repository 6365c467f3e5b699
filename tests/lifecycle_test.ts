/**
 * SPEC section 5: periodic re-authorization, heartbeats, what a closing
 * connection triggers, WebSocket keep-alive pings and graceful shutdown.
 */
import assert from "node:assert/strict";
import type { SharkConfigInput } from "../mod.ts";
import { TestClient } from "./helpers/client.ts";
import { SharkProcess } from "./helpers/process.ts";
import { Opcode, RawSocket } from "./helpers/raw_socket.ts";
import { held, slowly, TestService } from "./helpers/service.ts";
import { TestShark } from "./helpers/shark.ts";
import { tempFile } from "./helpers/temp.ts";
import { delay } from "./helpers/wait.ts";

type ServiceConfig = NonNullable<SharkConfigInput["services"]>[string];

/** The `books` service, open to anonymous sessions, with these settings. */
function books(service: ServiceConfig): { services: { books: ServiceConfig } } {
  return { services: { books: { require_authentication: false, ...service } } };
}

/** The before/on unsubscribe callbacks of `books`, both on `service`. */
function unsubscribeCallbacks(service: TestService): ServiceConfig {
  return {
    before_unsubscribe: service.url("/before_unsubscribe"),
    on_unsubscribe: service.url("/on_unsubscribe"),
  };
}

Deno.test("re-authorization: changed authorizer fields call on_authorization_change; failure unsubscribes with the error", async () => {
  let round = 0;
  await using service = new TestService({
    "/authorizer": () => {
      round++;
      if (round <= 2) return { status: "ok", role: "reader" };
      if (round === 3) return { status: "ok", role: "editor" };
      return { status: "error", error: "Access revoked." };
    },
    "/before_unsubscribe": { status: "ok", data: { reason: "revoked" } },
  });
  await using shark = await TestShark.start({
    delivery: { metadata: false },
    ...books({
      extra_fields: ["author_id"],
      authorizer: service.url("/authorizer"),
      authorizer_fields: ["role"],
      authorization_renewal_period: 0.2,
      on_authorization_change: service.url("/on_authorization_change"),
      ...unsubscribeCallbacks(service),
    }),
  });
  const client = await shark.subscriber("books.1", { author_id: "a1" });
  const notice = await client.next(3000);
  assert.deepEqual(notice, {
    event: "unsubscribe",
    subscription: "books.1",
    data: { reason: "revoked" },
    error: "Access revoked.",
    author_id: "a1",
  });
  assert.deepEqual(service.bodies("/on_authorization_change"), [
    { subscription: "books.1", author_id: "a1", role: "editor" },
  ]);
  const order = service.paths().filter((path) => path !== "/authorizer");
  assert.deepEqual(order, [
    "/on_authorization_change",
    "/before_unsubscribe",
    "/on_unsubscribe",
  ]);
  // The subscription is gone: nothing more is delivered, renewals stop.
  await shark.publish({ subscription: "books.1", data: "after" });
  const authorizations = service.bodies("/authorizer").length;
  await client.silence(500);
  assert.equal(service.bodies("/authorizer").length, authorizations);
  assert.equal(
    (await client.request({ event: "unsubscribe", subscription: "books.1" })).error,
    "Subscription does not exist.",
  );
});

Deno.test("re-authorization failing without an error text unsubscribes with Unauthorized.", async () => {
  let calls = 0;
  await using service = new TestService({
    "/authorizer": () => (++calls === 1 ? { status: "ok" } : { status: "error" }),
  });
  await using shark = await TestShark.start(books({
    authorizer: service.url("/authorizer"),
    authorization_renewal_period: 0.15,
  }));
  const client = await shark.subscriber("books.1");
  assert.deepEqual(await client.next(), {
    event: "unsubscribe",
    subscription: "books.1",
    error: "Unauthorized.",
  });
});

Deno.test("re-authorization runs every period minus a random jitter", async () => {
  await using service = new TestService();
  await using shark = await TestShark.start(books({
    authorizer: service.url("/authorizer"),
    authorization_renewal_period: 0.4,
    authorization_renewal_jitter: 0.3,
  }));
  await shark.subscriber("books.1");
  const calls = await service.waitFor("/authorizer", 6, 5000);
  const gaps = calls.slice(1).map((call, i) => call.at - calls[i].at);
  for (const gap of gaps) assert.ok(gap >= 80 && gap <= 480, `gap ${gap} ms`);
  assert.ok(new Set(gaps.map((gap) => Math.round(gap / 20))).size > 1, `jittered: ${gaps}`);
});

Deno.test("heartbeat: on_heartbeat every period per subscription, first within one period; failures only logged", async (t) => {
  await using service = new TestService({ "/on_heartbeat": { status: "error", error: "ignored" } });
  await using shark = await TestShark.start(books({
    extra_fields: ["author_id"],
    heartbeat_period: 0.2,
    on_heartbeat: service.url("/on_heartbeat"),
  }));
  const client = await shark.connect();
  const subscribedAt = performance.now();
  await client.subscribe("books.1", { author_id: "a" });
  await t.step("every period, the first within one", async () => {
    const calls = await service.waitFor("/on_heartbeat", 4, 3000);
    assert.ok(calls[0].at - subscribedAt <= 260, `first after ${calls[0].at - subscribedAt} ms`);
    for (let i = 1; i < calls.length; i++) {
      const gap = calls[i].at - calls[i - 1].at;
      assert.ok(gap >= 170 && gap < 400, `gap ${gap}`);
    }
    assert.deepEqual(calls[0].body, { subscription: "books.1", author_id: "a" });
  });
  await t.step("failed heartbeats do not end the subscription", async () => {
    await shark.publish({ subscription: "books.1", data: "still subscribed" });
    assert.equal((await client.next()).data, "still subscribed");
  });
  await t.step("heartbeats stop at close", async () => {
    await client.close();
    const count = service.bodies("/on_heartbeat").length;
    await delay(450);
    assert.equal(service.bodies("/on_heartbeat").length, count, "heartbeats stop at close");
  });
});

Deno.test("connection close ends every subscription with before_unsubscribe and on_unsubscribe", async () => {
  await using service = new TestService({
    "/before_unsubscribe": { status: "error", error: "ignored on close" },
  });
  await using shark = await TestShark.start(books(unsubscribeCallbacks(service)));
  const client = await shark.subscriber("books.1");
  await client.subscribe("books.2");
  await client.close();
  await service.waitFor("/on_unsubscribe", 2);
  const names = (path: string) => service.bodies(path).map((body) => body.subscription).sort();
  assert.deepEqual(names("/before_unsubscribe"), ["books.1", "books.2"]);
  assert.deepEqual(names("/on_unsubscribe"), ["books.1", "books.2"]);
  assert.equal(shark.shark.metrics.subscriptionsOpen, 0);
  assert.equal(shark.shark.metrics.topicsOpen, 0);
});

Deno.test("a subscribe still in before_subscribe when the client leaves is balanced with unsubscribe callbacks", async () => {
  const before = held({ status: "ok" });
  await using service = new TestService({ "/before_subscribe": before.answer });
  await using shark = await TestShark.start(books({
    before_subscribe: service.url("/before_subscribe"),
    on_subscribe: service.url("/on_subscribe"),
    ...unsubscribeCallbacks(service),
  }));
  const client = await shark.connect();
  client.send({ event: "subscribe", subscription: "books.1" });
  await service.waitFor("/before_subscribe");
  await client.close();
  before.release();
  await service.waitFor("/on_unsubscribe");
  assert.deepEqual(service.paths(), [
    "/before_subscribe",
    "/before_unsubscribe",
    "/on_unsubscribe",
  ]);
  assert.equal(shark.shark.metrics.topicsOpen, 0);
});

Deno.test("keep-alive: a client that never answers pings is pinged, then closed", async () => {
  await using shark = await TestShark.start({ ws_ping: { interval: 0.3, timeout: 0.3 } });
  using raw = await RawSocket.connect(shark.port);
  assert.equal(raw.status, 101);
  const started = performance.now();
  const ping = await raw.next(2000);
  assert.equal(ping?.opcode, Opcode.ping);
  const code = await raw.closeCode(2000);
  const closedAfter = performance.now() - started;
  assert.ok(code === null || code >= 1000, `closed with ${code}`);
  assert.ok(closedAfter >= 450 && closedAfter < 1500, `closed after ${closedAfter} ms`);
});

Deno.test("keep-alive: a client that answers pings stays connected", async () => {
  await using shark = await TestShark.start({ ws_ping: { interval: 0.2, timeout: 0.2 } });
  const client = await shark.connect();
  await delay(1200);
  await client.pingPong("alive");
});

Deno.test("graceful shutdown: 503 for new upgrades and /healthz, close 1001, callbacks awaited", async (t) => {
  await using service = new TestService({ "/on_unsubscribe": slowly(300) });
  await using shark = await TestShark.start(books({
    on_unsubscribe: service.url("/on_unsubscribe"),
  }));
  const client = await shark.subscriber("books.1");
  const stopping = shark.shark.shutdown();
  await t.step("503 for /healthz and new upgrades", async () => {
    const health = await fetch(shark.url("/healthz"));
    assert.equal(health.status, 503);
    await health.body?.cancel();
    await assert.rejects(() => shark.connect());
  });
  await t.step("clients are closed with 1001", async () => {
    const close = await client.closed;
    assert.equal(close.code, 1001);
  });
  await t.step("shutdown ends after the unsubscribe callbacks", async () => {
    await stopping;
    assert.equal(
      service.bodies("/on_unsubscribe").length,
      1,
      "on_unsubscribe ran before shutdown ended",
    );
  });
});

Deno.test("graceful shutdown gives up on callbacks after server.shutdown_timeout", async () => {
  await using service = new TestService({ "/on_unsubscribe": slowly(1500) });
  await using shark = await TestShark.start({
    server: { shutdown_timeout: 0.3 },
    http: { timeout: 5, tries: 1, wait: 0 },
    ...books({ on_unsubscribe: service.url("/on_unsubscribe") }),
  });
  const client = await shark.subscriber("books.1");
  const started = performance.now();
  await shark.shark.shutdown();
  const took = performance.now() - started;
  assert.ok(took >= 250 && took < 1500, `shutdown took ${took} ms`);
  await client.closed;
});

Deno.test("SIGTERM: clients closed with 1001 after their unsubscribe callbacks ran, exit code 0", async () => {
  await using service = new TestService();
  await using config = await tempFile({
    server: { port: 0 },
    ...books(unsubscribeCallbacks(service)),
  });
  await using shark = SharkProcess.spawn(["--config", config.path]);
  const port = await shark.listeningPort();
  await using client = await TestClient.connect(`ws://127.0.0.1:${port}/`);
  await client.subscribe("books.1");
  shark.child.kill("SIGTERM");
  const close = await client.closed;
  assert.equal(close.code, 1001);
  const { code } = await shark.exit();
  assert.equal(code, 0);
  assert.deepEqual(service.paths(), ["/before_unsubscribe", "/on_unsubscribe"]);
  assert.ok(shark.logs().some((line) => line.message === "shutdown complete"));
});
