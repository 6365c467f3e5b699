/**
 * The session's rules on a fake socket (SPEC section 8): slow consumers,
 * frame size, pending events, event order, nothing sent after close. No real
 * socket and no timer: each rule is checked as it happens.
 */
import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import { Metrics } from "../src/metrics/metrics.ts";
import { CloseReason, MAX_PENDING_EVENTS } from "../src/protocol.ts";
import { BUFFER_CHECK_BYTES, type ClientFrame, Session } from "../src/session/session.ts";
import { OPEN, type Socket } from "../src/socket.ts";
import { MAX_TIMER_MS } from "../src/clock.ts";
import { FakeClock } from "./helpers/clock.ts";

/** A client connection in memory: records what Shark sends; `bufferedAmount` grows while the client does not read. */
class FakeSocket implements Socket {
  readyState = OPEN;
  bufferedAmount = 0;
  binaryType: BinaryType = "blob";
  reading = true;
  readonly sent: (string | Uint8Array)[] = [];
  closedWith: [number | undefined, string | undefined] | undefined;
  readonly #listeners = new Map<string, EventListenerObject>();

  send(data: string | Uint8Array): void {
    this.sent.push(data);
    // The tests send ASCII: characters are bytes.
    if (!this.reading) this.bufferedAmount += data.length;
  }

  close(code?: number, reason?: string): void {
    this.closedWith = [code, reason];
    this.readyState = 2;
  }

  addEventListener(type: "message" | "close", listener: EventListenerObject): void {
    this.#listeners.set(type, listener);
  }

  /** The client sends a frame. */
  receive(data: ClientFrame): void {
    this.#listeners.get("message")!.handleEvent(new MessageEvent("message", { data }));
  }

  /** The client closes the connection. */
  closeByClient(code: number): void {
    this.readyState = 3;
    this.#listeners.get("close")!.handleEvent(new CloseEvent("close", { code }));
  }
}

interface Limits {
  maxMessageBytes?: number;
  maxBufferedBytes?: number;
  /** Handles one event, as the event handler would. */
  handle?: (frame: ClientFrame) => Promise<void>;
  /** Ends the subscriptions of the closed session, as the engine would. */
  sessionClosed?: () => Promise<void>;
  clock?: FakeClock;
}

function connect(limits: Limits = {}) {
  const socket = new FakeSocket();
  const metrics = new Metrics();
  const handle = limits.handle ?? (() => Promise.resolve());
  const session = new Session(socket, {
    metrics,
    limits: {
      maxMessageBytes: limits.maxMessageBytes ?? 64 * 1024,
      maxBufferedBytes: limits.maxBufferedBytes ?? 1024 * 1024,
    },
    handleEvent: (_session, frame) => handle(frame),
    sessionClosed: limits.sessionClosed ?? (() => Promise.resolve()),
    clock: limits.clock,
  }, getLogger(["shark", "test"]));
  return { socket, session, metrics };
}

const closeOf = (reason: CloseReason) => [reason.code, reason.reason];

Deno.test("slow consumer: output buffered past max_buffered_bytes closes with 1008 and counts the drop", () => {
  const { socket, session, metrics } = connect({ maxBufferedBytes: 64 * 1024 });
  socket.reading = false;
  const frame = "x".repeat(1024);
  for (let i = 0; i < 1000 && session.deliver(frame); i++);
  assert.deepEqual(socket.closedWith, closeOf(CloseReason.slowConsumer));
  assert.ok(socket.bufferedAmount <= 64 * 1024 + BUFFER_CHECK_BYTES);
  assert.equal(metrics.snapshot()["dropped.slow_consumer"], 1);
  assert.equal(metrics.delivered, socket.sent.length);
});

Deno.test("a client that reads keeps receiving whatever the volume", () => {
  const { socket, session } = connect({ maxBufferedBytes: 64 * 1024 });
  const frame = "x".repeat(1024);
  for (let i = 0; i < 1000; i++) assert.equal(session.deliver(frame), true);
  assert.equal(socket.closedWith, undefined);
  assert.equal(socket.sent.length, 1000);
});

Deno.test("a frame over max_message_bytes (UTF-8 bytes, or binary) closes with 1009", async (t) => {
  await t.step("text at the limit is handled, text over it in UTF-8 closes", () => {
    const handled: ClientFrame[] = [];
    const { socket } = connect({
      maxMessageBytes: 100,
      handle: (frame) => Promise.resolve(void handled.push(frame)),
    });
    socket.receive("x".repeat(100));
    assert.equal(handled.length, 1);
    socket.receive("é".repeat(51)); // 51 characters, 102 bytes
    assert.deepEqual(socket.closedWith, closeOf(CloseReason.messageTooBig));
    assert.equal(handled.length, 1);
  });
  await t.step("binary over the limit closes", () => {
    const { socket } = connect({ maxMessageBytes: 100 });
    socket.receive(new ArrayBuffer(101));
    assert.deepEqual(socket.closedWith, closeOf(CloseReason.messageTooBig));
  });
});

Deno.test("more than MAX_PENDING_EVENTS events queued behind the one being handled close with 1008", () => {
  const stuck = Promise.withResolvers<void>();
  const { socket, metrics } = connect({ handle: () => stuck.promise });
  for (let i = 0; i <= MAX_PENDING_EVENTS; i++) socket.receive(`{"event":"ping","data":"${i}"}`);
  assert.equal(socket.closedWith, undefined);
  socket.receive('{"event":"ping"}');
  assert.deepEqual(socket.closedWith, closeOf(CloseReason.tooManyEvents));
  assert.equal(metrics.snapshot()["closed.too_many_events"], 1);
  stuck.resolve();
});

Deno.test("events are handled one at a time, in arrival order", async () => {
  const log: string[] = [];
  const done = { a: Promise.withResolvers<void>(), b: Promise.withResolvers<void>() };
  const { socket, session } = connect({
    handle: async (frame) => {
      log.push(`start ${frame}`);
      await done[frame as "a" | "b"].promise;
      log.push(`end ${frame}`);
    },
  });
  socket.receive("a");
  socket.receive("b");
  // b's handler may finish first: it still starts only after a has ended.
  done.b.resolve();
  assert.deepEqual(log, ["start a"]);
  done.a.resolve();
  await session.idle();
  assert.deepEqual(log, ["start a", "end a", "start b", "end b"]);
});

Deno.test("a closed session sends nothing and handles no more events", async (t) => {
  await t.step("closed by Shark", async () => {
    const handled: ClientFrame[] = [];
    const { socket, session, metrics } = connect({
      handle: (frame) => Promise.resolve(void handled.push(frame)),
    });
    await session.close(CloseReason.shutdown);
    assert.deepEqual(socket.closedWith, closeOf(CloseReason.shutdown));
    assert.equal(session.send({ event: "pong" }), false);
    assert.equal(session.deliver('{"event":"message"}'), false);
    socket.receive('{"event":"ping"}');
    assert.deepEqual(socket.sent, []);
    assert.deepEqual(handled, []);
    assert.equal(metrics.delivered, 0);
  });
  await t.step("closed by the client", async () => {
    const { socket, session } = connect();
    socket.closeByClient(1000);
    await session.finished;
    assert.equal(session.closed, true);
    assert.equal(session.send({ event: "pong" }), false);
    assert.deepEqual(socket.sent, []);
    assert.equal(socket.closedWith, undefined);
  });
});

Deno.test("expired credentials close with 4001 once the unsubscribe callbacks are done", async () => {
  const clock = new FakeClock();
  const cleanup = Promise.withResolvers<void>();
  const { socket, session, metrics } = connect({ clock, sessionClosed: () => cleanup.promise });
  session.expireAuthIn(2000);
  clock.tick(1999);
  assert.equal(session.closed, false);
  clock.tick(1);
  assert.equal(session.closed, true);
  assert.equal(socket.closedWith, undefined, "the socket waits for the unsubscribe callbacks");
  cleanup.resolve();
  await session.finished;
  assert.deepEqual(socket.closedWith, closeOf(CloseReason.tokenExpired));
  assert.deepEqual(closeOf(CloseReason.tokenExpired), [4001, "token expired"]);
  assert.equal(CloseReason.tokenExpired.reconnect, true);
  assert.equal(metrics.snapshot()["closed.token_expired"], 1);
});

Deno.test("a new deadline replaces the last one, and none removes it", () => {
  const clock = new FakeClock();
  const { session } = connect({ clock });
  session.expireAuthIn(1000);
  clock.tick(900);
  session.expireAuthIn(1000);
  clock.tick(900);
  assert.equal(session.closed, false, "the first deadline no longer applies");
  assert.equal(clock.pending, 1);
  session.expireAuthIn(undefined);
  assert.equal(clock.pending, 0);
  clock.tick(MAX_TIMER_MS);
  assert.equal(session.closed, false);
});

Deno.test("a deadline beyond setTimeout's 2^31-1 ms is reached in steps, not at once", () => {
  const clock = new FakeClock();
  const { session } = connect({ clock });
  const delays: number[] = [];
  const setTimeout = clock.setTimeout.bind(clock);
  clock.setTimeout = (task, ms) => (delays.push(ms), setTimeout(task, ms));
  const ms = 3 * MAX_TIMER_MS + 5;
  session.expireAuthIn(ms);
  clock.tick(ms - 1);
  assert.equal(session.closed, false);
  clock.tick(1);
  assert.equal(session.closed, true);
  assert.ok(delays.every((delay) => delay <= MAX_TIMER_MS), String(delays));
  assert.deepEqual(delays, [MAX_TIMER_MS, MAX_TIMER_MS, MAX_TIMER_MS, 5]);
});

Deno.test("closing a session, by either side, stops its expiry timer", async () => {
  for (const close of ["shark", "client"]) {
    const clock = new FakeClock();
    const { socket, session } = connect({ clock });
    session.expireAuthIn(60_000);
    if (close === "shark") await session.close(CloseReason.shutdown);
    else socket.closeByClient(1000);
    assert.equal(clock.pending, 0, close);
    session.expireAuthIn(60_000);
    assert.equal(clock.pending, 0, "a closed session sets no timer");
  }
});
