/**
 * SPEC section 8 and Shark's own bounds: every resource one client, one
 * publisher or one address can make Shark hold has a limit, answered with
 * its error, status or close code and counted.
 */
import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import { FanoutQueueFull, Shark, type SharkConfigInput } from "../mod.ts";
import type { HealthReport } from "../src/http.ts";
import { serveHttp } from "../src/http.ts";
import { TestClient } from "./helpers/client.ts";
import { RawSocket } from "./helpers/raw_socket.ts";
import { TestService } from "./helpers/service.ts";
import { withShark } from "./helpers/shark.ts";

const open = { require_authentication: false };

/** `promise`, or a rejection after `ms`. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not settled within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("max_subscriptions: the next subscribe gets Too many subscriptions., checked after check 4, counted", async () => {
  const service = new TestService();
  try {
    await withShark({
      server: { max_subscriptions: 2 },
      services: { books: { ...open, authorizer: service.url("/authorizer") } },
    }, async (shark) => {
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
      await client.close();
      await other.close();
    });
  } finally {
    await service.close();
  }
});

Deno.test("max_connections_per_address: the next upgrade from that address gets 429, counted; a closed connection frees its slot at once", async () => {
  await withShark({ server: { max_connections_per_address: 2 } }, async (shark) => {
    const first = await shark.connect();
    const second = await shark.connect();
    const refused = await RawSocket.connect(shark.port);
    assert.equal(refused.status, 429);
    refused.close();
    assert.equal(shark.shark.metrics.snapshot()["rejected.max_connections_per_address"], 1);
    await first.close();
    const third = await shark.connect();
    assert.equal((await third.request({ event: "ping", data: "in" })).data, "in");
    await second.close();
    await third.close();
  });
});

/** A Shark served on loopback with the given options, stopped after `body`. */
async function withOwnShark(
  config: SharkConfigInput,
  options: ConstructorParameters<typeof Shark>[1],
  body: (port: number, shark: Shark) => Promise<void>,
): Promise<void> {
  const shark = new Shark(config, options);
  await shark.started;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request, info) => shark.handle(request, info),
  );
  try {
    await body(server.addr.port, shark);
  } finally {
    await shark.shutdown();
    await server.shutdown();
  }
}

Deno.test("max_memory_bytes: upgrades get 503 while resident memory is above it, counted", async () => {
  let rss = 600 * 1024 * 1024;
  await withOwnShark({ server: { max_memory_bytes: 512 * 1024 * 1024 } }, {
    memoryUsage: () => rss,
  }, async (port, shark) => {
    const refused = await RawSocket.connect(port);
    assert.equal(refused.status, 503);
    refused.close();
    assert.equal(shark.metrics.snapshot()["rejected.max_memory"], 1);
    rss = 100 * 1024 * 1024;
    const client = await TestClient.connect(`ws://127.0.0.1:${port}/`);
    assert.equal((await client.request({ event: "ping", data: "in" })).data, "in");
    await client.close();
  });
});

Deno.test("max_memory_bytes reads the process's resident memory by default", async () => {
  // Any Deno process holds more than 1 MiB.
  await withOwnShark({ server: { max_memory_bytes: 1024 * 1024 } }, {}, async (port, shark) => {
    const refused = await RawSocket.connect(port);
    assert.equal(refused.status, 503);
    refused.close();
    assert.equal(shark.metrics.snapshot()["rejected.max_memory"], 1);
  });
});

Deno.test("idle_timeout: a connection that neither authenticates nor subscribes is closed with 4008; one that subscribes stays", async () => {
  await withShark({
    server: { idle_timeout: 0.5 },
    services: { books: open },
  }, async (shark) => {
    const idle = await shark.connect();
    const pinging = await shark.connect();
    const subscribed = await shark.connect();
    await subscribed.request({ event: "subscribe", subscription: "books.1" });
    const started = performance.now();
    // Pings are not activity that counts.
    const timer = setInterval(() => pinging.send({ event: "ping" }), 100);
    try {
      const [idleClosed, pingingClosed] = await within(
        Promise.all([idle.closed, pinging.closed]),
        5000,
      );
      assert.equal(idleClosed.code, 4008);
      assert.equal(idleClosed.reason, "idle timeout");
      assert.equal(pingingClosed.code, 4008);
    } finally {
      clearInterval(timer);
    }
    assert.ok(performance.now() - started >= 300, "not closed before the timeout");
    assert.equal((await subscribed.request({ event: "ping", data: "still" })).data, "still");
    assert.equal(shark.shark.metrics.snapshot()["closed.idle_timeout"], 2);
    await subscribed.close();
  });
});

Deno.test("a full fan-out queue refuses publish() and drops what arrives from pub/sub, counted", async () => {
  const maxBytes = 65536;
  await withShark({
    server: { max_fanout_queue_bytes: maxBytes },
    delivery: { metadata: false },
    services: { books: open },
  }, async (shark) => {
    const client = await shark.connect();
    await client.request({ event: "subscribe", subscription: "books.1" });
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
    await client.close();
  });
});

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
    },
  );
  assert.equal(response.status, 503);
  assert.equal(response.headers.get("retry-after"), "1");
  assert.deepEqual(await response.json(), {
    status: "error",
    error: "Fan-out queue full: try again later.",
  });
});
