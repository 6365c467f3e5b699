/**
 * SPEC section 7: the HTTP endpoints on the client listener and the metrics
 * (Prometheus listener and the `log` provider).
 */
import assert from "node:assert/strict";
import { MemoryPubSub, Shark } from "../mod.ts";
import { TestClient } from "./helpers/client.ts";
import { freePort } from "./helpers/loopback.ts";
import { SharkProcess } from "./helpers/process.ts";
import { TestService } from "./helpers/service.ts";
import { TestShark } from "./helpers/shark.ts";
import { tempFile } from "./helpers/temp.ts";

Deno.test("GET /healthz is 200 with status ok when ready", async () => {
  await using shark = await TestShark.start({});
  const response = await fetch(shark.url("/healthz"));
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "application/json");
  const body = await response.json();
  assert.equal(body.status, "ok");
  assert.equal(body.adapter, "memory");
  assert.equal(body.connections, 0);
});

Deno.test("other plain HTTP requests get JSON 404, GET / gets 426", async (t) => {
  await using shark = await TestShark.start({});
  await t.step("GET / is 426", async () => {
    const root = await fetch(shark.url("/"));
    assert.equal(root.status, 426);
    assert.equal((await root.json()).status, "error");
  });
  await t.step("other paths and methods are JSON 404", async () => {
    for (const path of ["/nothing", "/healthz/extra", "/metrics"]) {
      const response = await fetch(shark.url(path));
      assert.equal(response.status, 404, path);
      assert.deepEqual(await response.json(), { status: "error", error: "Not found." });
    }
    const post = await fetch(shark.url("/healthz"), { method: "POST" });
    assert.equal(post.status, 404);
    await post.body?.cancel();
  });
});

Deno.test("a WebSocket upgrade works on any path", async () => {
  await using shark = await TestShark.start({});
  await using client = await TestClient.connect(`ws://127.0.0.1:${shark.port}/any/path?x=1`);
  await client.pingPong("p");
});

Deno.test("Prometheus metrics on their own listener cover the SPEC list, and the CLI adds its memory", async () => {
  await using service = new TestService({
    "/authorizer": ({ body }) =>
      body.subscription === "books.no" ? { status: "error" } : { status: "ok" },
  });
  const metricsPort = freePort();
  await using config = await tempFile({
    server: { port: 0 },
    metrics: { prometheus: { port: metricsPort } },
    publish_api: { secret: "publish-secret-for-tests" },
    services: {
      books: {
        require_authentication: false,
        authorizer: service.url("/authorizer"),
        filter_fields: ["user_id"],
      },
    },
  });
  await using shark = SharkProcess.spawn(["--config", config.path]);
  const port = await shark.listeningPort();
  await using client = await TestClient.connect(`ws://127.0.0.1:${port}/`);
  await client.subscribe("books.1");
  await client.request({ event: "subscribe", subscription: "books.no" });
  await client.request({ event: "dance" });
  const publish = (body: unknown) =>
    fetch(`http://127.0.0.1:${port}/publish`, {
      method: "POST",
      headers: { authorization: "Bearer publish-secret-for-tests" },
      body: JSON.stringify(body),
    }).then((response) => response.body?.cancel());
  await publish({ subscription: "books.1", data: 1 });
  await publish({ subscription: "books.1", data: 2, user_id: "someone else" });
  await client.next();
  const response = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type")!, /^text\/plain/);
  const text = await response.text();
  for (
    const line of [
      "shark_ready 1",
      "shark_connections_open 1",
      "shark_connections_total 1",
      'shark_events_total{event="subscribe",outcome="ok"} 1',
      'shark_events_total{event="subscribe",outcome="error"} 1',
      'shark_events_total{event="unknown",outcome="error"} 1',
      "shark_subscriptions_open 1",
      "shark_topics_open 1",
      "shark_pubsub_received_total 2",
      "shark_messages_delivered_total 1",
      'shark_messages_dropped_total{reason="filter"} 1',
      'shark_callbacks_total{callback="authorizer",outcome="ok"} 1',
      'shark_callbacks_total{callback="authorizer",outcome="error"} 1',
      'shark_callback_duration_seconds_count{callback="authorizer"} 2',
    ]
  ) {
    assert.ok(text.split("\n").includes(line), `missing: ${line}\n${text}`);
  }
  assert.match(text, /# TYPE shark_callback_duration_seconds histogram/);
  // The CLI adds the process's memory: RSS holds the heap, which holds what is in use.
  const gauge = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, "m").exec(text)?.[1]);
  const rss = gauge("process_resident_memory_bytes");
  const heapTotal = gauge("deno_heap_total_bytes");
  const heapUsed = gauge("deno_heap_used_bytes");
  assert.ok(rss > heapTotal && heapTotal > heapUsed && heapUsed > 0, text);
  assert.ok(gauge("deno_external_memory_bytes") > 0, text);
  await client.close();
  const notFound = await fetch(`http://127.0.0.1:${metricsPort}/other`);
  assert.equal(notFound.status, 404);
  await notFound.body?.cancel();
});

Deno.test("the log metrics provider prints the counters every interval", async () => {
  await using shark = SharkProcess.spawn(["--port", "0"], {
    SHARK_CONFIG: JSON.stringify({ metrics: { log: { interval: 0.2 } } }),
  });
  const port = await shark.listeningPort();
  await using _client = await TestClient.connect(`ws://127.0.0.1:${port}/`);
  const line = await shark.waitForLog((line) =>
    line.message === "metrics" && line.properties?.connections_open === 1
  );
  assert.equal(line.properties?.connections_total, 1);
  assert.equal(line.properties?.ready, 1);
});

Deno.test("Engine.upgrade: header fields alone; refused like any upgrade, and a request the upgrade seam does not know gets 400, not a crash", async () => {
  // The default seam is Deno.upgradeWebSocket, which knows only the runtime's own requests.
  const shark = new Shark(
    { server: { allowed_origins: ["https://app.example"] } },
    { pubsub: new MemoryPubSub() },
  );
  try {
    await shark.started;
    const fields = (origin: string | null) => ({
      headers: { get: (name: string) => name.toLowerCase() === "origin" ? origin : null },
    });
    const refused = await shark.upgrade(fields("https://evil.example"));
    assert.equal(refused.status, 403);
    const unknown = await shark.upgrade(fields("https://app.example"));
    assert.equal(unknown.status, 400);
    assert.match((await unknown.json()).error, /^Bad WebSocket upgrade/);
    assert.equal(shark.connections, 0);
  } finally {
    await shark.shutdown();
  }
});
