/**
 * `--workers N` with the broadcast_channel adapter: N isolates behind one
 * port behave as one Shark (issue 3; SPEC sections 3 and 6 `pubsub`).
 */
import assert from "node:assert/strict";
import { TestClient } from "./helpers/client.ts";
import { ROOT, runMain, SharkProcess } from "./helpers/process.ts";

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Polls `/healthz` until it answers 200 (at most 15 s). */
async function untilHealthy(port: number): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const health = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined);
    await health?.body?.cancel();
    if (health?.ok) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Per-worker values of one sample of the merged exposition. */
function perWorker(text: string, metric: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split("\n")) {
    const match = new RegExp(`^${metric}\\{worker="(\\d+)"\\} (\\S+)$`).exec(line);
    if (match) values.set(match[1], Number(match[2]));
  }
  return values;
}

Deno.test("--workers 2: clients on both isolates get every message, whichever isolate takes the POST", async () => {
  const metricsPort = freePort();
  const file = await Deno.makeTempFile({ suffix: ".json" });
  await Deno.writeTextFile(
    file,
    JSON.stringify({
      server: { port: 0 },
      pubsub: { adapter: "broadcast_channel", broadcast_channel: { name: crypto.randomUUID() } },
      publish_api: { secret: "s" },
      metrics: { prometheus: { port: metricsPort } },
      delivery: { metadata: false },
      services: { news: { require_authentication: false } },
    }),
  );
  const shark = SharkProcess.spawn(["--config", file, "--workers", "2"]);
  const clients: TestClient[] = [];
  try {
    const started = await shark.waitForLog((line) =>
      /workers listening/.test(String(line.message))
    );
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
    for (
      let i = 0;
      i < 60 && (clients.length < 4 || !(await bothHave("shark_subscriptions_open")));
      i++
    ) {
      const client = await TestClient.connect(`ws://127.0.0.1:${port}/`);
      await client.request({ event: "subscribe", subscription: "news.today" });
      clients.push(client);
    }
    assert.ok(await bothHave("shark_subscriptions_open"), "both isolates hold subscribers");
    // Publish over fresh connections until both isolates took POSTs.
    let published = 0;
    for (let i = 0; i < 40 && (published < 4 || !(await bothHave("shark_published_total"))); i++) {
      const response = await fetch(`http://127.0.0.1:${port}/publish`, {
        method: "POST",
        headers: { authorization: "Bearer s", connection: "close" },
        body: JSON.stringify({ subscription: "news.today", data: { n: published } }),
      });
      assert.equal(response.status, 200);
      await response.body?.cancel();
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
  } finally {
    for (const client of clients) await client.close();
    shark.child.kill("SIGTERM");
    const { code } = await shark.exit();
    assert.equal(code, 0);
    await Deno.remove(file);
  }
});

Deno.test("--workers 4: connections made as soon as /healthz answers are spread over every isolate", async () => {
  const port = freePort();
  const metricsPort = freePort();
  const shark = SharkProcess.spawn([
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
  const conns: Deno.Conn[] = [];
  try {
    // As a load generator does: connect the moment the port answers.
    await untilHealthy(port);
    const upgrade = new TextEncoder().encode(
      "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    for (let i = 0; i < 800; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conns.push(conn);
      await conn.write(upgrade);
      await conn.read(new Uint8Array(512));
    }
    const text = await fetch(`http://127.0.0.1:${metricsPort}/metrics`).then((r) => r.text());
    const open = perWorker(text, "shark_connections_open");
    assert.equal(open.size, 4);
    assert.equal([...open.values()].reduce((a, b) => a + b, 0), 800);
    // 200 on average; an isolate that listened late used to get none.
    for (const [worker, count] of open) assert.ok(count >= 100, `worker ${worker}: ${count}`);
  } finally {
    for (const conn of conns) conn.close();
    shark.child.kill("SIGTERM");
    assert.equal((await shark.exit()).code, 0);
  }
});

Deno.test("--workers with the memory adapter refuses to start with a clear message", async () => {
  const { code, stderr } = await runMain(["--workers", "2", "--port", "0"]);
  assert.equal(code, 2);
  assert.match(stderr, /--workers needs an adapter that crosses isolates/);
  const bad = await runMain(["--workers", "zero"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--workers/);
});

Deno.test("deno serve --parallel with examples/deno_serve.ts delivers across its isolates", async () => {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["serve", "--parallel", "-A", "--port", String(port), "examples/deno_serve.ts"],
    cwd: ROOT,
    env: {
      DENO_JOBS: "2",
      SHARK_CONFIG: JSON.stringify({
        pubsub: { adapter: "broadcast_channel", broadcast_channel: { name: crypto.randomUUID() } },
        publish_api: { secret: "s" },
        delivery: { metadata: false },
        services: { news: { require_authentication: false } },
      }),
    },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const clients: TestClient[] = [];
  try {
    await untilHealthy(port);
    for (let i = 0; i < 12; i++) {
      const client = await TestClient.connect(`ws://127.0.0.1:${port}/`);
      await client.request({ event: "subscribe", subscription: "news.today" });
      clients.push(client);
    }
    for (let n = 0; n < 6; n++) {
      const response = await fetch(`http://127.0.0.1:${port}/publish`, {
        method: "POST",
        headers: { authorization: "Bearer s", connection: "close" },
        body: JSON.stringify({ subscription: "news.today", data: n }),
      });
      assert.equal(response.status, 200);
      await response.body?.cancel();
    }
    for (const client of clients) {
      const received = (await client.take(6)).map((message) => message.data as number);
      assert.deepEqual(received.sort(), [0, 1, 2, 3, 4, 5]);
    }
  } finally {
    for (const client of clients) await client.close();
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    const status = await child.status;
    clearTimeout(timer);
    await child.stderr.cancel();
    assert.equal(status.signal, null, "deno serve exits by itself on SIGTERM");
  }
});
