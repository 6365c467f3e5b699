/**
 * SPEC section 8: limits and bad input. Nothing one client, service or
 * publisher sends may crash Shark or stall the other sessions.
 */
import assert from "node:assert/strict";
import { getLogger, type Logger } from "@logtape/logtape";
import { Shark } from "../mod.ts";
import { TestClient } from "./helpers/client.ts";
import { Opcode, RawSocket } from "./helpers/raw_socket.ts";
import { slowly, TestService } from "./helpers/service.ts";
import { withShark } from "./helpers/shark.ts";

Deno.test("a frame over max_message_bytes closes the connection with 1009", async () => {
  await withShark({ server: { max_message_bytes: 1024 } }, async (shark) => {
    const client = await shark.connect();
    assert.equal((await client.request({ event: "ping", data: "x".repeat(900) })).event, "pong");
    client.send({ event: "ping", data: "x".repeat(1100) });
    assert.equal((await client.closed).code, 1009);
    // Multi-byte characters count as bytes, not characters.
    const other = await shark.connect();
    other.send({ event: "ping", data: "é".repeat(600) });
    assert.equal((await other.closed).code, 1009);
    const binary = await shark.connect();
    binary.send(new Uint8Array(2000));
    assert.equal((await binary.closed).code, 1009);
  });
});

Deno.test("max_connections: the next upgrade gets 503; a closed connection frees its slot at once", async () => {
  await withShark({ server: { max_connections: 2 } }, async (shark) => {
    const first = await shark.connect();
    const second = await shark.connect();
    const refused = await RawSocket.connect(shark.port);
    assert.equal(refused.status, 503);
    refused.close();
    await first.close();
    const third = await shark.connect();
    assert.deepEqual(await third.request({ event: "ping", data: "in" }), {
      event: "pong",
      data: "in",
    });
    await second.close();
    await third.close();
    assert.equal(shark.shark.metrics.snapshot()["rejected.max_connections"], 1);
  });
});

Deno.test("allowed_origins: other browser origins get 403; listed origins and non-browser clients get in", async () => {
  await withShark({ server: { allowed_origins: ["https://app.example.com"] } }, async (shark) => {
    const foreign = await RawSocket.connect(shark.port, { Origin: "https://evil.example.com" });
    assert.equal(foreign.status, 403);
    foreign.close();
    const listed = await RawSocket.connect(shark.port, { Origin: "https://app.example.com" });
    assert.equal(listed.status, 101);
    listed.close();
    const noOrigin = await RawSocket.connect(shark.port);
    assert.equal(noOrigin.status, 101);
    noOrigin.close();
  });
});

Deno.test("slow consumer: a client that stops reading is closed with 1008; others keep receiving", async () => {
  await withShark({
    server: { max_buffered_bytes: 256 * 1024 },
    delivery: { metadata: false },
    services: { feed: { require_authentication: false } },
  }, async (shark) => {
    const reader = await shark.connect();
    await reader.request({ event: "subscribe", subscription: "feed.1" });
    const stalled = await RawSocket.connect(shark.port);
    await stalled.send(Opcode.text, JSON.stringify({ event: "subscribe", subscription: "feed.1" }));
    const ok = await stalled.next();
    assert.match(new TextDecoder().decode(ok!.payload), /"status":"ok"/);
    // The stalled client reads nothing more while 20 MB are published.
    const chunk = "x".repeat(64 * 1024);
    for (let i = 0; i < 320; i++) {
      await shark.publish({ subscription: "feed.1", data: { i, chunk } });
      if (i % 16 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      // The healthy reader keeps up.
      assert.equal(((await reader.next()).data as { i: number }).i, i);
    }
    assert.equal(shark.shark.metrics.snapshot()["dropped.slow_consumer"], 1);
    assert.equal(shark.shark.connections, 1);
    assert.equal(await stalled.closeCode(10_000), 1008);
    stalled.close();
    await reader.close();
  });
});

Deno.test("a client sending events faster than they are handled is closed with 1008", async () => {
  const service = new TestService({
    "/on_message": slowly(200),
  });
  try {
    await withShark({
      services: { chat: { require_authentication: false, on_message: service.url("/on_message") } },
    }, async (shark) => {
      const client = await shark.connect();
      await client.request({ event: "subscribe", subscription: "chat.1" });
      for (let i = 0; i < 400; i++) {
        client.send({ event: "message", subscription: "chat.1", data: { i } });
      }
      // The client may see the close frame or, still writing, a reset: Shark's side tells.
      await client.closed;
      assert.equal(shark.shark.metrics.snapshot()["closed.too_many_events"], 1);
      assert.equal(shark.shark.connections, 0);
    });
  } finally {
    await service.close();
  }
});

Deno.test("deeply nested JSON gets an error reply; huge flat JSON within the limit is fine", async () => {
  await withShark({ services: { books: { require_authentication: false } } }, async (shark) => {
    const client = await shark.connect();
    const deep = `{"event":"ping","data":${"[".repeat(20_000)}${"]".repeat(20_000)}}`;
    assert.deepEqual(await client.request(deep), {
      status: "error",
      error: "Messages must not nest deeper than 64 levels.",
    });
    const wide = JSON.stringify({ event: "ping", data: "y".repeat(60_000) });
    assert.equal((await client.request(wide)).event, "pong");
    assert.deepEqual(await client.request({ event: "ping", data: "ok" }), {
      event: "pong",
      data: "ok",
    });
    await client.close();
  });
});

Deno.test("invalid UTF-8 in a text frame closes only that connection", async () => {
  await withShark({}, async (shark) => {
    const bystander = await shark.connect();
    const raw = await RawSocket.connect(shark.port);
    await raw.send(Opcode.text, new Uint8Array([0x7b, 0xc3, 0x28, 0x7d]));
    const frame = await raw.next();
    assert.ok(frame === null || frame.opcode === Opcode.close || frame.opcode === Opcode.text);
    raw.close();
    assert.deepEqual(await bystander.request({ event: "ping", data: "fine" }), {
      event: "pong",
      data: "fine",
    });
    await bystander.close();
  });
});

Deno.test("a service that hangs delays only its own session", async () => {
  const service = new TestService({
    "/before_subscribe": slowly(2000),
  });
  try {
    await withShark({
      http: { timeout: 0.5, tries: 2, wait: 0 },
      services: {
        hang: { require_authentication: false, before_subscribe: service.url("/before_subscribe") },
        fine: { require_authentication: false },
      },
    }, async (shark) => {
      const stuck = await shark.connect();
      stuck.send({ event: "subscribe", subscription: "hang.1" });
      const other = await shark.connect();
      const started = performance.now();
      assert.equal(
        (await other.request({ event: "subscribe", subscription: "fine.1" })).status,
        "ok",
      );
      await shark.publish({ subscription: "fine.1", data: "flowing" });
      assert.equal((await other.next()).data, "flowing");
      assert.ok(performance.now() - started < 300);
      assert.equal((await stuck.next(3000)).error, "Service unavailable.");
      await stuck.close();
      await other.close();
    });
  } finally {
    await service.close();
  }
});

/** A logger whose warnings throw: turns a failing callback into an unexpected internal failure. */
function throwingOnWarn(logger: Logger): Logger {
  return new Proxy(logger, {
    get(target, property) {
      if (property === "warn") {
        return () => {
          throw new Error("injected failure");
        };
      }
      if (property === "with") {
        return (properties: Record<string, unknown>) => throwingOnWarn(target.with(properties));
      }
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

Deno.test("an unexpected internal failure replies Unhandled exception. and closes the connection with 1011", async () => {
  const shark = new Shark({
    http: { timeout: 1, tries: 1, wait: 0 },
    services: { books: { require_authentication: false, before_subscribe: "http://127.0.0.1:9/" } },
  }, { logger: throwingOnWarn(getLogger(["shark-test"])) });
  await shark.started;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (r) => shark.handle(r),
  );
  try {
    const client = await TestClient.connect(`ws://127.0.0.1:${server.addr.port}/`);
    const bystander = await TestClient.connect(`ws://127.0.0.1:${server.addr.port}/`);
    assert.deepEqual(await client.request({ event: "subscribe", subscription: "books.1" }), {
      event: "subscribe",
      status: "error",
      error: "Unhandled exception.",
      subscription: "books.1",
    });
    assert.equal((await client.closed).code, 1011);
    assert.equal((await bystander.request({ event: "ping", data: "ok" })).data, "ok");
    await bystander.close();
  } finally {
    await shark.shutdown();
    await server.shutdown();
  }
});
