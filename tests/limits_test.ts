/**
 * SPEC section 8: limits and bad input. Nothing one client, service or
 * publisher sends may crash Shark or stall the other sessions.
 */
import assert from "node:assert/strict";
import { getLogger, type Logger } from "@logtape/logtape";
import { Opcode, RawSocket } from "./helpers/raw_socket.ts";
import { slowly, TestService } from "./helpers/service.ts";
import { TestShark } from "./helpers/shark.ts";
import { delay } from "./helpers/wait.ts";

Deno.test("a frame over max_message_bytes closes the connection with 1009", async (t) => {
  await using shark = await TestShark.start({ server: { max_message_bytes: 1024 } });
  await t.step("a text frame under the limit is handled, one over it closes", async () => {
    const client = await shark.connect();
    assert.equal((await client.request({ event: "ping", data: "x".repeat(900) })).event, "pong");
    client.send({ event: "ping", data: "x".repeat(1100) });
    assert.equal((await client.closed).code, 1009);
  });
  await t.step("multi-byte characters count as bytes, not characters", async () => {
    const other = await shark.connect();
    other.send({ event: "ping", data: "é".repeat(600) });
    assert.equal((await other.closed).code, 1009);
  });
  await t.step("a binary frame over the limit closes", async () => {
    const binary = await shark.connect();
    binary.send(new Uint8Array(2000));
    assert.equal((await binary.closed).code, 1009);
  });
});

Deno.test("allowed_origins: other browser origins get 403; listed origins and non-browser clients get in", async (t) => {
  await using shark = await TestShark.start({
    server: { allowed_origins: ["https://app.example.com"] },
  });
  /** The HTTP status of an upgrade with these headers. */
  const upgrade = async (headers: Record<string, string> = {}) => {
    using raw = await RawSocket.connect(shark.port, headers);
    return raw.status;
  };
  await t.step("another browser origin: 403", async () => {
    assert.equal(await upgrade({ Origin: "https://evil.example.com" }), 403);
  });
  await t.step("a listed origin: 101", async () => {
    assert.equal(await upgrade({ Origin: "https://app.example.com" }), 101);
  });
  await t.step("no Origin (not a browser): 101", async () => {
    assert.equal(await upgrade(), 101);
  });
});

Deno.test("slow consumer: a client that stops reading is closed with 1008; others keep receiving", async () => {
  await using shark = await TestShark.start({
    server: { max_buffered_bytes: 256 * 1024 },
    delivery: { metadata: false },
    services: { feed: { require_authentication: false } },
  });
  const reader = await shark.subscriber("feed.1");
  using stalled = await RawSocket.connect(shark.port);
  await stalled.send(Opcode.text, JSON.stringify({ event: "subscribe", subscription: "feed.1" }));
  const ok = await stalled.next();
  assert.match(new TextDecoder().decode(ok!.payload), /"status":"ok"/);
  // The stalled client reads nothing more while 20 MB are published.
  const chunk = "x".repeat(64 * 1024);
  for (let i = 0; i < 320; i++) {
    await shark.publish({ subscription: "feed.1", data: { i, chunk } });
    if (i % 16 === 0) await delay(5);
    // The healthy reader keeps up.
    assert.equal(((await reader.next()).data as { i: number }).i, i);
  }
  assert.equal(shark.shark.metrics.snapshot()["dropped.slow_consumer"], 1);
  assert.equal(shark.shark.connections, 1);
  assert.equal(await stalled.closeCode(10_000), 1008);
});

Deno.test("a client sending events faster than they are handled is closed with 1008", async () => {
  await using service = new TestService({ "/on_message": slowly(200) });
  await using shark = await TestShark.start({
    services: { chat: { require_authentication: false, on_message: service.url("/on_message") } },
  });
  const client = await shark.subscriber("chat.1");
  for (let i = 0; i < 400; i++) {
    client.send({ event: "message", subscription: "chat.1", data: { i } });
  }
  // The client may see the close frame or, still writing, a reset: Shark's side tells.
  await client.closed;
  assert.equal(shark.shark.metrics.snapshot()["closed.too_many_events"], 1);
  assert.equal(shark.shark.connections, 0);
});

Deno.test("deeply nested JSON gets an error reply; huge flat JSON within the limit is fine", async () => {
  await using shark = await TestShark.start({
    services: { books: { require_authentication: false } },
  });
  const client = await shark.connect();
  const deep = `{"event":"ping","data":${"[".repeat(20_000)}${"]".repeat(20_000)}}`;
  assert.deepEqual(await client.request(deep), {
    status: "error",
    error: "Messages must not nest deeper than 64 levels.",
  });
  const wide = JSON.stringify({ event: "ping", data: "y".repeat(60_000) });
  assert.equal((await client.request(wide)).event, "pong");
  await client.pingPong("ok");
});

Deno.test("invalid UTF-8 in a text frame closes only that connection", async () => {
  await using shark = await TestShark.start({});
  const bystander = await shark.connect();
  using raw = await RawSocket.connect(shark.port);
  await raw.send(Opcode.text, new Uint8Array([0x7b, 0xc3, 0x28, 0x7d]));
  const frame = await raw.next();
  assert.ok(frame === null || frame.opcode === Opcode.close || frame.opcode === Opcode.text);
  raw.close();
  await bystander.pingPong("fine");
});

Deno.test("a service that hangs delays only its own session", async () => {
  await using service = new TestService({ "/before_subscribe": slowly(2000) });
  await using shark = await TestShark.start({
    http: { timeout: 0.5, tries: 2, wait: 0 },
    services: {
      hang: { require_authentication: false, before_subscribe: service.url("/before_subscribe") },
      fine: { require_authentication: false },
    },
  });
  const stuck = await shark.connect();
  stuck.send({ event: "subscribe", subscription: "hang.1" });
  const other = await shark.connect();
  const started = performance.now();
  await other.subscribe("fine.1");
  await shark.publish({ subscription: "fine.1", data: "flowing" });
  assert.equal((await other.next()).data, "flowing");
  assert.ok(performance.now() - started < 300);
  assert.equal((await stuck.next(3000)).error, "Service unavailable.");
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
  await using shark = await TestShark.start({
    http: { timeout: 1, tries: 1, wait: 0 },
    services: { books: { require_authentication: false, before_subscribe: "http://127.0.0.1:9/" } },
  }, { logger: throwingOnWarn(getLogger(["shark-test"])) });
  const client = await shark.connect();
  const bystander = await shark.connect();
  assert.deepEqual(await client.request({ event: "subscribe", subscription: "books.1" }), {
    event: "subscribe",
    status: "error",
    error: "Unhandled exception.",
    subscription: "books.1",
  });
  assert.equal((await client.closed).code, 1011);
  await bystander.pingPong("ok");
});
