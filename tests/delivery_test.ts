/**
 * SPEC sections 3 and 4: what a subscriber receives of a published envelope —
 * filter fields, order, throttle, the no-gap guarantee, delivery metadata and
 * the shared-frame fast path.
 */
import assert from "node:assert/strict";
import type { Clock, SharkConfigInput } from "../mod.ts";
import { okReply, type TestClient } from "./helpers/client.ts";
import { FAKE_EPOCH_MS, FakeClock } from "./helpers/clock.ts";
import { range } from "./helpers/range.ts";
import { held, TestService } from "./helpers/service.ts";
import { TestShark } from "./helpers/shark.ts";
import { waitUntil } from "./helpers/wait.ts";

const NO_METADATA = { delivery: { metadata: false } } as const;

/**
 * A Shark whose one service needs no authentication; delivery metadata off
 * unless `metadata` (then `delivery` keeps its defaults); on `clock` when
 * given, else on the runtime's.
 */
function openService(
  name: string,
  service: NonNullable<SharkConfigInput["services"]>[string] = {},
  { metadata = false, clock }: { metadata?: boolean; clock?: Clock } = {},
): Promise<TestShark> {
  return TestShark.start({
    ...(metadata ? {} : NO_METADATA),
    services: { [name]: { require_authentication: false, ...service } },
  }, { clock });
}

/** Publishes to `subscription` on `shark`: `data` with the envelope's delivery `options`. */
function publisher(shark: TestShark, subscription: string) {
  return (data: unknown, options: Record<string, unknown>) =>
    shark.publish({ subscription, data, options });
}

Deno.test("a published message reaches every subscriber with the envelope's data and its extra fields", async () => {
  await using shark = await openService("books", { extra_fields: ["author_id"] });
  const plain = await shark.subscriber("books.1");
  const a = await shark.subscriber("books.1", { author_id: "a" });
  const b = await shark.subscriber("books.1", { author_id: "b" });
  const other = await shark.subscriber("books.2");
  await shark.publish({ subscription: "books.1", data: { title: "New title" } });
  const expected = { event: "message", subscription: "books.1", data: { title: "New title" } };
  assert.deepEqual(await plain.next(), expected);
  assert.deepEqual(await a.next(), { ...expected, author_id: "a" });
  assert.deepEqual(await b.next(), { ...expected, author_id: "b" });
  await other.silence(200);
});

Deno.test("subscriptions with the same extra fields share one frame; different ones get their own", async () => {
  await using shark = await openService("books", { extra_fields: ["org", "tag"] });
  const requests = [
    {},
    { org: 1 },
    { org: 1 },
    { org: 2 },
    { org: 1, tag: ["x"] },
    {},
  ];
  const clients = [];
  for (const extra of requests) clients.push(await shark.subscriber("books.1", extra));
  await shark.publish({ subscription: "books.1", data: [1, 2, 3] });
  for (const [index, client] of clients.entries()) {
    assert.deepEqual(await client.next(), {
      event: "message",
      subscription: "books.1",
      data: [1, 2, 3],
      ...requests[index],
    });
  }
});

Deno.test("filter fields: extra fields compare with the subscription, others with the auth info", async () => {
  await using service = new TestService({
    "/auth": ({ body }) => ({ status: "ok", user_id: body.ticket }),
  });
  await using shark = await TestShark.start({
    ...NO_METADATA,
    authentication: {
      ticket: { validation_url: service.url("/auth"), auth_fields: ["user_id"] },
    },
    services: { calls: { extra_fields: ["org_id"], filter_fields: ["org_id", "user_id"] } },
  });
  const connect = async (user: string, org: string) => {
    const client = await shark.connect();
    await client.auth(user);
    await client.subscribe("calls.c1", { org_id: org });
    return client;
  };
  const u1o1 = await connect("u1", "o1");
  const u2o1 = await connect("u2", "o1");
  const u1o2 = await connect("u1", "o2");
  await shark.publish({ subscription: "calls.c1", data: { n: 1 }, user_id: "u1" });
  await shark.publish({ subscription: "calls.c1", data: { n: 2 }, org_id: "o1" });
  await shark.publish({
    subscription: "calls.c1",
    data: { n: 3 },
    org_id: "o2",
    user_id: "u1",
  });
  await shark.publish({ subscription: "calls.c1", data: { n: 4 } });
  const received = async (client: TestClient, count: number) =>
    (await client.take(count)).map((message) => (message.data as { n: number }).n);
  assert.deepEqual(await received(u1o1, 3), [1, 2, 4]);
  assert.deepEqual(await received(u2o1, 2), [2, 4]);
  assert.deepEqual(await received(u1o2, 3), [1, 3, 4]);
  for (const client of [u1o1, u2o1, u1o2]) await client.silence(100);
  for (const client of [u1o1, u2o1, u1o2]) await client.close();
  assert.equal(shark.shark.metrics.snapshot()["dropped.filter"], 4);
});

Deno.test("order: messages at or below the highest order seen per order_key are dropped", async () => {
  await using shark = await openService("calls");
  const client = await shark.subscriber("calls.call_1");
  const publish = publisher(shark, "calls.call_1");
  // The README's example: "initiating", "completed", "h" and "hello" arrive.
  await publish("initiating", { order: 1, order_key: "call_1.status" });
  await publish("completed", { order: 3, order_key: "call_1.status" });
  await publish("ringing", { order: 2, order_key: "call_1.status" });
  await publish("h", { order: 1, order_key: "call_1.note" });
  await publish("hello", { order: 3, order_key: "call_1.note" });
  await publish("hell", { order: 2, order_key: "call_1.note" });
  // Absent key is its own bucket; equal order is dropped; numeric strings count.
  await publish("default 5", { order: 5 });
  await publish("default 5 again", { order: 5 });
  await publish("default 6.5 as text", { order: "6.5" });
  await publish("default 6", { order: 6 });
  // A non-numeric order is ignored: delivered.
  await publish("not a number", { order: "soon" });
  const data = (await client.take(7)).map((message) => message.data);
  assert.deepEqual(data, [
    "initiating",
    "completed",
    "h",
    "hello",
    "default 5",
    "default 6.5 as text",
    "not a number",
  ]);
  await client.silence(100);
});

Deno.test("order: before_subscribe's options.order seeds the state", async () => {
  await using service = new TestService({
    "/before_subscribe": { status: "ok", data: { version: 10 }, options: { order: 10 } },
  });
  await using shark = await openService("docs", {
    before_subscribe: service.url("/before_subscribe"),
  });
  const client = await shark.subscriber("docs.d");
  const publish = publisher(shark, "docs.d");
  await publish("stale", { order: 9 });
  await publish("same", { order: 10 });
  await publish("fresh", { order: 11 });
  assert.equal((await client.next()).data, "fresh");
  await client.silence(100);
});

Deno.test("order state is per session: another subscriber is not affected", async () => {
  await using shark = await openService("calls");
  const publish = publisher(shark, "calls.1");
  const early = await shark.subscriber("calls.1");
  await publish("v5", { order: 5 });
  assert.equal((await early.next()).data, "v5");
  const late = await shark.subscriber("calls.1");
  await publish("v3", { order: 3 });
  assert.equal((await late.next()).data, "v3");
  await early.silence(100);
});

Deno.test("throttle: the first goes at once, a burst collapses to its last one period later", async () => {
  const clock = new FakeClock();
  await using shark = await openService("stats", {}, { clock });
  const client = await shark.subscriber("stats.calls");
  const publish = publisher(shark, "stats.calls");
  for (const n of [1, 2, 3]) await publish({ n }, { throttle: 0.3 });
  const data = async () => (await client.sentSoFar()).map((message) => message.data);
  assert.deepEqual(await data(), [{ n: 1 }], "the first at once");
  clock.tick(299);
  assert.deepEqual(await data(), [], "nothing more within the period");
  clock.tick(1);
  assert.deepEqual(await data(), [{ n: 3 }], "the last one at the end of the period");
  assert.equal(clock.pending, 0, "nothing more is held");
  assert.equal(shark.shark.metrics.snapshot()["dropped.throttle_replaced"], 1);
});

Deno.test("throttle: a steady stream yields one message per period and always the last one", async () => {
  const clock = new FakeClock();
  await using shark = await openService("stats", {}, { clock });
  const client = await shark.subscriber("stats.s");
  const publish = publisher(shark, "stats.s");
  const arrivals: [number, number][] = [];
  const arrived = async () => {
    for (const message of await client.sentSoFar()) {
      arrivals.push([(message.data as { n: number }).n, clock.now()]);
    }
  };
  // 20 messages, 50 ms apart, throttled to one per 250 ms.
  for (let n = 1; n <= 20; n++) {
    await publish({ n }, { throttle: 0.25 });
    await arrived();
    clock.tick(50);
  }
  await arrived();
  // [n, at ms]: the first at once, then the latest one at the end of each period.
  assert.deepEqual(arrivals, [[1, 0], [5, 250], [10, 500], [15, 750], [20, 1000]]);
});

Deno.test("throttle keys throttle independently", async () => {
  await using shark = await openService("stats");
  const client = await shark.subscriber("stats.k");
  const publish = (data: string, key: string) =>
    publisher(shark, "stats.k")(data, { throttle: 5, throttle_key: key });
  await publish("a1", "a");
  await publish("b1", "b");
  await publish("a2", "a");
  assert.deepEqual((await client.take(2)).map((message) => message.data), ["a1", "b1"]);
  await client.silence(200);
});

Deno.test("no gap: a message published while before_subscribe runs arrives right after the ok reply", async () => {
  const state = { state: "as read by before_subscribe" };
  const before = held({ status: "ok", data: state });
  await using service = new TestService({ "/before_subscribe": before.answer });
  await using shark = await openService("books", {
    extra_fields: ["author_id"],
    before_subscribe: service.url("/before_subscribe"),
  });
  const client = await shark.connect();
  await shark.publish({ subscription: "books.1", data: "before the subscribe: not seen" });
  client.send({ event: "subscribe", subscription: "books.1", author_id: "a" });
  await service.waitFor("/before_subscribe");
  await shark.publish({ subscription: "books.1", data: "during before_subscribe" });
  await shark.publish({ subscription: "books.1", data: "also during" });
  before.release();
  const [ok, first, second] = await client.take(3);
  const expected = { author_id: "a", data: state, subscription: "books.1" };
  assert.deepEqual(ok, okReply("subscribe", expected));
  assert.deepEqual(first, {
    event: "message",
    subscription: "books.1",
    data: "during before_subscribe",
    author_id: "a",
  });
  assert.equal(second.data, "also during");
  await shark.publish({ subscription: "books.1", data: "after" });
  assert.equal((await client.next()).data, "after");
});

Deno.test("no gap: messages held for a failed subscribe are never delivered", async () => {
  const before = held({ status: "error", error: "Nope." });
  await using service = new TestService({ "/before_subscribe": before.answer });
  await using shark = await openService("books", {
    before_subscribe: service.url("/before_subscribe"),
  });
  const client = await shark.connect();
  client.send({ event: "subscribe", subscription: "books.1" });
  await service.waitFor("/before_subscribe");
  await shark.publish({ subscription: "books.1", data: "held" });
  before.release();
  assert.equal((await client.next()).error, "Nope.");
  await client.silence(200);
  assert.equal(shark.shark.metrics.topicsOpen, 0, "the topic is released");
});

Deno.test("delivery metadata: published_at normalized to UTC, received_at, sent_at, queue_size", async () => {
  await using shark = await openService("books", {}, { metadata: true });
  const client = await shark.subscriber("books.1");
  const before = Date.now();
  const cases: [unknown, string | undefined][] = [
    ["2024-05-01T12:00:00.123456+02:00", "2024-05-01T10:00:00.123Z"],
    ["2024-05-01T12:00:00", "2024-05-01T12:00:00.000Z"],
    ["2024-05-01 12:00:00.5", "2024-05-01T12:00:00.500Z"],
    ["2024-05-01T12:00:00Z", "2024-05-01T12:00:00.000Z"],
    ["2024-05-01T12:00:00-0530", "2024-05-01T17:30:00.000Z"],
    ["2024-02-30T00:00:00Z", undefined],
    ["yesterday", undefined],
    [1714564800, undefined],
    [undefined, undefined],
  ];
  for (const [published_at] of cases) {
    await shark.publish({ subscription: "books.1", data: "m", published_at });
  }
  for (const [input, expected] of cases) {
    const message = await client.next();
    assert.equal(message.published_at, expected, `published_at ${input}`);
    assert.equal(message.data, "m", "the message itself is delivered");
    for (const key of ["received_at", "sent_at"]) {
      const value = message[key] as string;
      assert.match(value, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.ok(Date.parse(value) >= before - 5 && Date.parse(value) <= Date.now() + 5);
    }
    assert.ok(Date.parse(message.sent_at as string) >= Date.parse(message.received_at as string));
    assert.equal(typeof message.queue_size, "number");
  }
});

Deno.test("queue_size counts the envelopes waiting behind one in this process", async () => {
  await using shark = await openService("books", {}, { metadata: true });
  const client = await shark.subscriber("books.1");
  // One batch lands in the queue at once: the first has the other two behind it.
  await shark.publish([1, 2, 3].map((n) => ({ subscription: "books.1", data: n })));
  const sizes = (await client.take(3)).map((message) => message.queue_size);
  assert.deepEqual(sizes, [2, 1, 0]);
});

Deno.test("delivery.metadata false sends only event, subscription, data and extra fields", async () => {
  await using shark = await openService("books");
  const client = await shark.subscriber("books.1");
  await shark.publish({ subscription: "books.1", data: {}, published_at: "2024-01-01T00:00:00Z" });
  assert.deepEqual(await client.next(), { event: "message", subscription: "books.1", data: {} });
});

Deno.test("a throttled message released later carries its own sent_at", async () => {
  const clock = new FakeClock();
  await using shark = await openService("stats", {}, { metadata: true, clock });
  const client = await shark.subscriber("stats.1");
  const publish = publisher(shark, "stats.1");
  await publish(1, { throttle: 0.3 });
  await publish(2, { throttle: 0.3 });
  const [first] = await client.sentSoFar();
  clock.tick(300);
  const [second] = await client.sentSoFar();
  const at = (ms: number) => new Date(FAKE_EPOCH_MS + ms).toISOString();
  const times = (message: Record<string, unknown>) => [message.received_at, message.sent_at];
  assert.deepEqual(times(first), [at(0), at(0)]);
  assert.deepEqual(times(second), [at(0), at(300)], "sent when the throttle released it");
});

Deno.test("under a burst, messages leave and other clients are served before the burst is fanned out", async () => {
  // Each reading of this clock is 50 ms later, so the fan-out's first slice
  // is over after its first envelope; the full event loop turn it then
  // yields for is a 0 ms timer of this clock, which runs only when the test
  // moves time. Until then the burst waits, whatever the machine's speed.
  const clock = new FakeClock({ perReading: 50 });
  await using shark = await openService("feed", {}, { clock });
  const metrics = shark.shark.metrics;
  const clients = [];
  for (let i = 0; i < 100; i++) clients.push(await shark.subscriber("feed.1"));
  const bystander = await shark.connect();
  const burst = Array.from({ length: 1500 }, (_, n) => ({ subscription: "feed.1", data: n }));
  await shark.publish(burst);
  assert.equal(clock.pending, 1, "the fan-out waits for its turn");
  const pong = await bystander.request({ event: "ping", data: "during the burst" });
  assert.deepEqual(pong, { event: "pong", data: "during the burst" });
  assert.equal(metrics.snapshot()["events.ping.ok"], 1);
  assert.equal(metrics.queued, 1499, "the ping was answered with all but one envelope queued");
  for (const client of clients) assert.equal((await client.next()).data, 0, "the first one left");
  assert.equal(metrics.queued, 1499);
  await waitUntil(
    () => {
      clock.tick(10_000);
      return metrics.queued === 0;
    },
    10_000,
    "the rest of the burst fanned out as time moves",
  );
  for (const client of clients) {
    const rest = (await client.take(1499, 10_000)).map((message) => message.data);
    assert.deepEqual(rest, range(1, 1499), "every message arrives, in order");
  }
});
