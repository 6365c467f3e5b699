/**
 * `--workers N` with the broadcast_channel adapter: N isolates behind one
 * port behave as one Shark (issue 3; SPEC sections 3 and 6 `pubsub`).
 */
import assert from "node:assert/strict";
import { TestClient } from "./helpers/client.ts";
import { answersOk, freePort } from "./helpers/loopback.ts";
import { runMain, SharkProcess } from "./helpers/process.ts";
import { tempFile } from "./helpers/temp.ts";
import { waitUntil } from "./helpers/wait.ts";
import { upgradeRequest } from "./helpers/ws_frame.ts";

/** Per-worker values of one sample of the merged exposition. */
function perWorker(text: string, metric: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split("\n")) {
    const match = new RegExp(`^${metric}\\{worker="(\\d+)"\\} (\\S+)$`).exec(line);
    if (match) values.set(match[1], Number(match[2]));
  }
  return values;
}

/** Publishes `data` to `news.today` over a fresh connection (which isolate takes it is the kernel's choice). */
async function publish(port: number, data: unknown): Promise<void> {
  const response = await fetch(`http://127.0.0.1:${port}/publish`, {
    method: "POST",
    headers: { authorization: "Bearer publish-secret-for-tests", connection: "close" },
    body: JSON.stringify({ subscription: "news.today", data }),
  });
  assert.equal(response.status, 200);
  await response.body?.cancel();
}

/** A broadcast_channel configuration of its own, with the publish API and an open `news` service. */
function crossIsolates(config: Record<string, unknown> = {}) {
  return {
    pubsub: { adapter: "broadcast_channel", broadcast_channel: { name: crypto.randomUUID() } },
    publish_api: { secret: "publish-secret-for-tests" },
    delivery: { metadata: false },
    services: { news: { require_authentication: false } },
    ...config,
  };
}

Deno.test("--workers 2: clients on both isolates get every message, whichever isolate takes the POST; /metrics has each heap and one RSS", async () => {
  const metricsPort = freePort();
  await using config = await tempFile(crossIsolates({
    server: { port: 0 },
    metrics: { prometheus: { port: metricsPort } },
  }));
  await using shark = SharkProcess.spawn(["--config", config.path, "--workers", "2"]);
  await using opened = new AsyncDisposableStack();
  const started = await shark.waitForLog((line) => /workers listening/.test(String(line.message)));
  const port = Number(started.properties?.port);
  const health = await fetch(`http://127.0.0.1:${port}/healthz`);
  assert.equal(health.status, 200);
  assert.equal((await health.json()).adapter, "broadcast_channel");
  // Connect until both isolates hold clients (the kernel spreads connections).
  const metrics = () => fetch(`http://127.0.0.1:${metricsPort}/metrics`).then((r) => r.text());
  const bothHave = async (metric: string) => {
    const counts = perWorker(await metrics(), metric);
    return counts.size === 2 && [...counts.values()].every((count) => count > 0);
  };
  const clients: TestClient[] = [];
  for (
    let i = 0;
    i < 60 && (clients.length < 4 || !(await bothHave("shark_subscriptions_open")));
    i++
  ) {
    const client = opened.use(await TestClient.connect(`ws://127.0.0.1:${port}/`));
    await client.subscribe("news.today");
    clients.push(client);
  }
  assert.ok(await bothHave("shark_subscriptions_open"), "both isolates hold subscribers");
  // Publish over fresh connections until both isolates took POSTs.
  let published = 0;
  for (let i = 0; i < 40 && (published < 4 || !(await bothHave("shark_published_total"))); i++) {
    await publish(port, { n: published });
    published++;
  }
  assert.ok(await bothHave("shark_published_total"), "both isolates took POSTs");
  for (const client of clients) {
    const received = (await client.take(published)).map((message) =>
      (message.data as { n: number }).n
    );
    assert.deepEqual(received.sort((a, b) => a - b), [...Array(published).keys()]);
  }
  const delivered = perWorker(await metrics(), "shark_messages_delivered_total");
  assert.equal([...delivered.values()].reduce((a, b) => a + b, 0), published * clients.length);
  // Each isolate has its heap; the process has one RSS.
  const text = await metrics();
  assert.equal(perWorker(text, "deno_heap_used_bytes").size, 2);
  assert.equal(text.match(/^process_resident_memory_bytes \d+$/gm)?.length, 1, text);
  await opened.disposeAsync();
  const { code } = await shark.stop();
  assert.equal(code, 0);
});

Deno.test("--workers 4: connections made as soon as /healthz answers are spread over every isolate", async () => {
  const port = freePort();
  const metricsPort = freePort();
  await using shark = SharkProcess.spawn([
    "--port",
    String(port),
    "--workers",
    "4",
    "--adapter",
    "broadcast_channel",
    "--log-level",
    "warning",
  ], {
    SHARK_CONFIG: JSON.stringify({ metrics: { prometheus: { port: metricsPort } } }),
  });
  using conns = new DisposableStack();
  // As a load generator does: connect the moment the port answers.
  await waitUntil(
    () => answersOk(`http://127.0.0.1:${port}/healthz`),
    15_000,
    "--workers 4 answering /healthz",
  );
  const upgrade = upgradeRequest(port, "dGhlIHNhbXBsZSBub25jZQ==");
  for (let i = 0; i < 800; i++) {
    const conn = conns.use(await Deno.connect({ hostname: "127.0.0.1", port }));
    await conn.write(upgrade);
    await conn.read(new Uint8Array(512));
  }
  const text = await fetch(`http://127.0.0.1:${metricsPort}/metrics`).then((r) => r.text());
  const open = perWorker(text, "shark_connections_open");
  assert.equal(open.size, 4);
  assert.equal([...open.values()].reduce((a, b) => a + b, 0), 800);
  // 200 on average; an isolate that listened late used to get none.
  for (const [worker, count] of open) assert.ok(count >= 100, `worker ${worker}: ${count}`);
  conns.dispose();
  assert.equal((await shark.stop()).code, 0);
});

Deno.test("--workers with the memory adapter refuses to start with a clear message", async (t) => {
  await t.step("the memory adapter does not cross isolates: exit 2", async () => {
    const { code, stderr } = await runMain(["--workers", "2", "--port", "0"]);
    assert.equal(code, 2);
    assert.match(stderr, /--workers needs an adapter that crosses isolates/);
  });
  await t.step("a count that is not a number: exit 2", async () => {
    const bad = await runMain(["--workers", "zero"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--workers/);
  });
});

Deno.test("deno serve --parallel with examples/deno_serve.ts delivers across its isolates", async () => {
  const port = freePort();
  await using server = SharkProcess.deno(
    ["serve", "--parallel", "-A", "--port", String(port), "examples/deno_serve.ts"],
    { DENO_JOBS: "2", SHARK_CONFIG: JSON.stringify(crossIsolates()) },
  );
  await using opened = new AsyncDisposableStack();
  await waitUntil(
    () => answersOk(`http://127.0.0.1:${port}/healthz`),
    10_000,
    "deno serve answering /healthz",
  );
  const clients: TestClient[] = [];
  for (let i = 0; i < 12; i++) {
    const client = opened.use(await TestClient.connect(`ws://127.0.0.1:${port}/`));
    await client.subscribe("news.today");
    clients.push(client);
  }
  for (let n = 0; n < 6; n++) await publish(port, n);
  for (const client of clients) {
    const received = (await client.take(6)).map((message) => message.data as number);
    assert.deepEqual(received.sort(), [0, 1, 2, 3, 4, 5]);
  }
  await opened.disposeAsync();
  const { signal } = await server.stop();
  assert.equal(signal, null, "deno serve exits by itself on SIGTERM");
});
