/**
 * SPEC section 5: periodic re-authorization, heartbeats, what a closing
 * connection triggers, WebSocket keep-alive pings and graceful shutdown.
 * The timing rules run on a fake clock, at exact test milliseconds; a few
 * end-to-end checks keep the runtime's timers, with bounds a loaded machine
 * meets.
 */
import assert from "node:assert/strict";
import type { SharkConfigInput } from "../mod.ts";
import { errorReply, TestClient } from "./helpers/client.ts";
import { FakeClock } from "./helpers/clock.ts";
import { SharkProcess, TRANSPORT } from "./helpers/process.ts";
import { Opcode, RawSocket } from "./helpers/raw_socket.ts";
import { held, slowly, TestService } from "./helpers/service.ts";
import { TestShark } from "./helpers/shark.ts";
import { tempFile } from "./helpers/temp.ts";
import { delay, waitUntil, within } from "./helpers/wait.ts";

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

Deno.test("re-authorization every period: changed authorizer fields call on_authorization_change; failure unsubscribes with the error", async () => {
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
  const clock = new FakeClock();
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
  }, { clock });
  const client = await shark.subscriber("books.1", { author_id: "a1" });
  // Subscribed at 0 ms; each renewal is due one period after the last one.
  const renewals = [await clock.runNext(), await clock.runNext(), await clock.runNext()];
  assert.deepEqual(renewals, [200, 400, 600]);
  assert.deepEqual(await client.next(), {
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
  // The subscription is gone: no renewal is due any more, nothing is delivered.
  assert.equal(clock.pending, 0, "no renewal left");
  clock.tick(1000);
  await shark.publish({ subscription: "books.1", data: "after" });
  assert.deepEqual(await client.sentSoFar(), []);
  assert.equal(service.bodies("/authorizer").length, 4);
  assert.deepEqual(
    await client.request({ event: "unsubscribe", subscription: "books.1" }),
    errorReply("unsubscribe", "Subscription does not exist.", { subscription: "books.1" }),
  );
});

Deno.test("re-authorization failing without an error text unsubscribes with Unauthorized.", async () => {
  let calls = 0;
  await using service = new TestService({
    "/authorizer": () => (++calls === 1 ? { status: "ok" } : { status: "error" }),
  });
  const clock = new FakeClock();
  await using shark = await TestShark.start(
    books({
      authorizer: service.url("/authorizer"),
      authorization_renewal_period: 0.15,
    }),
    { clock },
  );
  const client = await shark.subscriber("books.1");
  assert.equal(await clock.runNext(), 150);
  assert.deepEqual(await client.next(), {
    event: "unsubscribe",
    subscription: "books.1",
    error: "Unauthorized.",
  });
});

Deno.test("re-authorization runs every period minus a random jitter", async () => {
  await using service = new TestService();
  const clock = new FakeClock();
  await using shark = await TestShark.start(
    books({
      authorizer: service.url("/authorizer"),
      authorization_renewal_period: 0.4,
      authorization_renewal_jitter: 0.3,
    }),
    { clock },
  );
  await shark.subscriber("books.1");
  const renewals = [0];
  for (let i = 0; i < 6; i++) renewals.push(await clock.runNext());
  const gaps = renewals.slice(1).map((at, i) => at - renewals[i]);
  for (const gap of gaps) assert.ok(gap >= 100 && gap <= 400, `gap ${gap} ms`);
  assert.ok(new Set(gaps).size > 1, `jittered: ${gaps}`);
  // The subscribe's authorization, then one per renewal.
  await service.waitFor("/authorizer", 7);
});

Deno.test("heartbeat: on_heartbeat every period per subscription, first within one period; failures only logged", async (t) => {
  await using service = new TestService({ "/on_heartbeat": { status: "error", error: "ignored" } });
  const clock = new FakeClock();
  await using shark = await TestShark.start(
    books({
      extra_fields: ["author_id"],
      heartbeat_period: 0.2,
      on_heartbeat: service.url("/on_heartbeat"),
    }),
    { clock },
  );
  const client = await shark.connect();
  await client.subscribe("books.1", { author_id: "a" });
  await t.step("every period, the first within one", async () => {
    const beats = [await clock.runNext()];
    assert.ok(beats[0] >= 0 && beats[0] <= 200, `first at ${beats[0]} ms`);
    for (let i = 1; i < 4; i++) beats.push(await clock.runNext());
    const first = beats[0];
    assert.deepEqual(beats, [first, first + 200, first + 200 + 200, first + 200 + 200 + 200]);
    const calls = await service.waitFor("/on_heartbeat", 4);
    assert.deepEqual(calls[0].body, { subscription: "books.1", author_id: "a" });
  });
  await t.step("failed heartbeats do not end the subscription", async () => {
    await shark.publish({ subscription: "books.1", data: "still subscribed" });
    assert.equal((await client.next()).data, "still subscribed");
  });
  await t.step("heartbeats stop at close", async () => {
    await client.close();
    await waitUntil(() => shark.shark.metrics.subscriptionsOpen === 0, 5000, "unsubscribed");
    assert.equal(clock.pending, 0, "no heartbeat left");
    const count = service.bodies("/on_heartbeat").length;
    clock.tick(1000);
    assert.equal(service.bodies("/on_heartbeat").length, count);
  });
});

Deno.test("on the runtime's timers (no clock given), renewals and heartbeats come every period", async () => {
  await using service = new TestService();
  await using shark = await TestShark.start(books({
    authorizer: service.url("/authorizer"),
    authorization_renewal_period: 0.2,
    heartbeat_period: 0.2,
    on_heartbeat: service.url("/on_heartbeat"),
  }));
  await shark.subscriber("books.1");
  // Generous bounds: a loaded machine only makes timers late, never early.
  const renewals = await service.waitFor("/authorizer", 4, 20_000);
  const beats = await service.waitFor("/on_heartbeat", 3, 20_000);
  for (const calls of [renewals, beats]) {
    const gaps = calls.slice(1).map((call, i) => call.at - calls[i].at);
    for (const gap of gaps) assert.ok(gap >= 190, `${calls[0].path}: gap ${gap} ms`);
  }
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

/** How the transport under test closes a connection whose pings go unanswered. */
const KEEPALIVE_CLOSE = TRANSPORT === "shark" ? 1011 : 1001;

Deno.test("keep-alive: a client that never answers pings is pinged, then closed", async () => {
  await using shark = await TestShark.start({ ws_ping: { interval: 0.3, timeout: 0.3 } });
  // From before the upgrade: the idle timeout (0.6 s ±10%) cannot have started earlier.
  const started = performance.now();
  using raw = await RawSocket.connect(shark.port);
  assert.equal(raw.status, 101);
  const ping = await raw.next(10_000);
  assert.equal(ping?.opcode, Opcode.ping);
  const code = await raw.closeCode(10_000);
  const closedAfter = performance.now() - started;
  assert.equal(code, KEEPALIVE_CLOSE);
  assert.ok(closedAfter >= 500, `closed after ${closedAfter} ms`);
});

Deno.test("keep-alive: a client that answers pings stays connected", async () => {
  // A pong may take up to 0.6 s: a loaded machine answers well within it.
  await using shark = await TestShark.start({ ws_ping: { interval: 0.2, timeout: 1 } });
  const client = await shark.connect();
  await delay(2500);
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
  const unsubscribe = held({ status: "ok" });
  await using service = new TestService({ "/on_unsubscribe": unsubscribe.answer });
  try {
    const clock = new FakeClock();
    await using shark = await TestShark.start({
      server: { shutdown_timeout: 0.3 },
      http: { timeout: 60, tries: 1, wait: 0 },
      ...books({ on_unsubscribe: service.url("/on_unsubscribe") }),
    }, { clock });
    const client = await shark.subscriber("books.1");
    let finished = false;
    const stopping = shark.shark.shutdown().then(() => finished = true);
    await service.waitFor("/on_unsubscribe");
    clock.tick(299);
    // More than 300 ms of real time too: the timeout runs on the engine's clock.
    await delay(400);
    assert.equal(finished, false, "still waiting for on_unsubscribe at 299 ms");
    clock.tick(1);
    await within(stopping, 5000, "shutdown at 300 ms");
    assert.equal((await client.closed).code, 1001);
  } finally {
    unsubscribe.release();
  }
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
