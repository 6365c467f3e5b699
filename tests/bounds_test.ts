/**
 * SPEC section 8 and Shark's own bounds: every resource one client, one
 * publisher or one address can make Shark hold has a limit, answered with
 * its error, status or close code and counted.
 */
import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import { FanoutQueueFull } from "../mod.ts";
import { type HealthReport, serveHttp } from "../src/http/http.ts";
import { FakeClock } from "./helpers/clock.ts";
import { RawSocket } from "./helpers/raw_socket.ts";
import { TestService } from "./helpers/service.ts";
import { TestShark } from "./helpers/shark.ts";
import { within } from "./helpers/wait.ts";

const open = { require_authentication: false };

Deno.test("max_subscriptions: the next subscribe gets Too many subscriptions., checked after check 4, counted", async () => {
  await using service = new TestService();
  await using shark = await TestShark.start({
    server: { max_subscriptions: 2 },
    services: { books: { ...open, authorizer: service.url("/authorizer") } },
  });
  const client = await shark.connect();
  for (const name of ["books.1", "books.2"]) {
    assert.equal(
      (await client.request({ event: "subscribe", subscription: name })).status,
      "ok",
    );
  }
  // Check 4 comes first: a name already held is "Already subscribed." even when full.
  assert.equal(
    (await client.request({ event: "subscribe", subscription: "books.1" })).error,
    "Already subscribed.",
  );
  assert.deepEqual(await client.request({ event: "subscribe", subscription: "books.3" }), {
    event: "subscribe",
    status: "error",
    error: "Too many subscriptions.",
    subscription: "books.3",
  });
  // Refused before the authorizer (check 5) is asked.
  assert.equal(service.bodies("/authorizer").length, 2);
  assert.equal(shark.shark.metrics.snapshot()["limited.max_subscriptions"], 1);
  // An unsubscribe frees a slot.
  await client.request({ event: "unsubscribe", subscription: "books.2" });
  assert.equal(
    (await client.request({ event: "subscribe", subscription: "books.3" })).status,
    "ok",
  );
  // The limit is per connection.
  const other = await shark.connect();
  assert.equal(
    (await other.request({ event: "subscribe", subscription: "books.1" })).status,
    "ok",
  );
});

for (
  const { limit, next, status } of [
    { limit: "max_connections", next: "the next upgrade", status: 503 },
    {
      limit: "max_connections_per_address",
      next: "the next upgrade from that address",
      status: 429,
    },
  ] as const
) {
  Deno.test(`${limit}: ${next} gets ${status}, counted; a closed connection frees its slot at once`, async () => {
    await using shark = await TestShark.start({ server: { [limit]: 2 } });
    const rejected = () => shark.shark.metrics.snapshot()[`rejected.${limit}`];
    const first = await shark.connect();
    await shark.connect();
    using refused = await RawSocket.connect(shark.port);
    assert.equal(refused.status, status);
    assert.equal(rejected(), 1);
    await first.close();
    const third = await shark.connect();
    await third.pingPong("in");
    assert.equal(rejected(), 1, "the freed slot is not refused");
  });
}

Deno.test("max_memory_bytes: upgrades get 503 while resident memory is above it, counted", async () => {
  let rss = 600 * 1024 * 1024;
  await using shark = await TestShark.start({ server: { max_memory_bytes: 512 * 1024 * 1024 } }, {
    memoryUsage: () => rss,
  });
  {
    using refused = await RawSocket.connect(shark.port);
    assert.equal(refused.status, 503);
  }
  assert.equal(shark.shark.metrics.snapshot()["rejected.max_memory"], 1);
  rss = 100 * 1024 * 1024;
  const client = await shark.connect();
  await client.pingPong("in");
});

Deno.test("max_memory_bytes reads the process's resident memory by default", async () => {
  // Any Deno process holds more than 1 MiB.
  await using shark = await TestShark.start({ server: { max_memory_bytes: 1024 * 1024 } });
  using refused = await RawSocket.connect(shark.port);
  assert.equal(refused.status, 503);
  assert.equal(shark.shark.metrics.snapshot()["rejected.max_memory"], 1);
});

Deno.test("idle_timeout: a connection that neither authenticates nor subscribes is closed with 4008 at its deadline; one that subscribes stays", async () => {
  const clock = new FakeClock();
  await using shark = await TestShark.start({
    server: { idle_timeout: 0.5 },
    services: { books: open },
  }, { clock });
  const idle = await shark.connect();
  const pinging = await shark.connect();
  const subscribed = await shark.connect();
  await subscribed.subscribe("books.1");
  clock.tick(499);
  // Pings are not activity that counts; answered, they also show nobody was closed yet.
  await idle.pingPong("at 499 ms");
  await pinging.pingPong("at 499 ms");
  clock.tick(1);
  const [idleClosed, pingingClosed] = await within(
    Promise.all([idle.closed, pinging.closed]),
    5000,
    "both idle connections closed",
  );
  assert.equal(idleClosed.code, 4008);
  assert.equal(idleClosed.reason, "idle timeout");
  assert.equal(pingingClosed.code, 4008);
  await subscribed.pingPong("still");
  assert.equal(shark.shark.metrics.snapshot()["closed.idle_timeout"], 2);
});

Deno.test("a full fan-out queue refuses publish() and drops what arrives from pub/sub, counted", async () => {
  const maxBytes = 65536;
  await using shark = await TestShark.start({
    server: { max_fanout_queue_bytes: maxBytes },
    delivery: { metadata: false },
    services: { books: open },
  });
  const client = await shark.connect();
  await client.subscribe("books.1");
  const envelopes = Array.from({ length: 40 }, (_, i) => ({
    subscription: "books.1",
    data: { i, text: "x".repeat(2000) },
  }));
  const size = JSON.stringify(envelopes[0]).length;
  // The memory adapter hands every envelope of one publish to the queue at
  // once; its fan-out runs later, so the queue fills up within this call.
  const first = shark.publish(envelopes);
  await assert.rejects(shark.publish(envelopes[0]), FanoutQueueFull);
  assert.equal(await first, 40);
  const accepted = Math.ceil(maxBytes / size);
  const received = await client.take(accepted);
  assert.deepEqual(received.map((message) => (message.data as { i: number }).i), [
    ...Array(accepted).keys(),
  ]);
  await client.silence(200);
  // 40 - accepted dropped on arrival, 1 refused at publish.
  assert.equal(shark.shark.metrics.snapshot()["dropped.queue_full"], 40 - accepted + 1);
  assert.equal(shark.shark.metrics.queuedBytes, 0);
  // Once fanned out, the queue takes envelopes again.
  await shark.publish({ subscription: "books.1", data: "again" });
  assert.equal((await client.next()).data, "again");
});

const unused = () => Promise.reject(new Error("not used by this test"));

Deno.test("POST /publish answers 503 with Retry-After while the fan-out queue is full", async () => {
  const response = await serveHttp(
    new Request("http://shark/publish", {
      method: "POST",
      headers: { authorization: "Bearer s" },
      body: JSON.stringify({ subscription: "books.1", data: {} }),
    }),
    {
      publishSecret: "s",
      log: getLogger(["shark-test"]),
      health: () => ({}) as HealthReport,
      publish: () => Promise.reject(new FanoutQueueFull("full")),
      serverApi: { presence: unused, disconnect: unused, unsubscribe: unused },
    },
  );
  assert.equal(response.status, 503);
  assert.equal(response.headers.get("retry-after"), "1");
  assert.deepEqual(await response.json(), {
    status: "error",
    error: "Fan-out queue full: try again later.",
  });
});
