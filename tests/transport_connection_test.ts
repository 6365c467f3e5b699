/**
 * One connection of the transport over a fake `node:net` socket: the output
 * queue (one write per turn, `bufferedAmount`), the closing
 * handshake and the keep-alive, without a socket or a wall-clock window.
 */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import type { ChunkWriter } from "../cli/transport/chunk_writer.ts";
import { WebSocketConnection } from "../cli/transport/connection.ts";
import { buildFrame, Opcode, textFrame } from "../cli/transport/frame.ts";
import { FrameReader, type FrameSink } from "../cli/transport/frame_reader.ts";
import { TransportScheduler } from "../cli/transport/scheduler.ts";
import { FakeClock } from "./helpers/clock.ts";

/** A `node:net` socket as the connection uses it: writes recorded, input given by the test. */
class FakeWire extends EventEmitter {
  readonly writes: Uint8Array[] = [];
  /** Bytes the socket holds because the kernel did not take them (set by the test). */
  writableLength = 0;
  /** `end` was called: the FIN goes out after what was written. */
  ended = false;
  destroyed = false;

  /** When true, writes stay under way until `finishWrites`. */
  holdWrites = false;
  #done: (() => void)[] = [];

  write(bytes: Uint8Array, done: () => void): boolean {
    this.writes.push(bytes);
    if (this.holdWrites) this.#done.push(done);
    else queueMicrotask(done);
    return true;
  }

  /** The kernel takes the writes under way. */
  finishWrites(): void {
    this.holdWrites = false;
    for (const done of this.#done.splice(0)) done();
  }

  end(): this {
    this.ended = true;
    return this;
  }

  destroy(): this {
    if (!this.destroyed) queueMicrotask(() => this.emit("close"));
    this.destroyed = true;
    return this;
  }

  /** Whether reading was stopped. */
  paused = false;

  pause(): this {
    this.paused = true;
    return this;
  }

  resume(): this {
    this.paused = false;
    return this;
  }

  /** The client sends `bytes`. */
  receive(bytes: Uint8Array): void {
    this.emit("data", bytes);
  }

  /** Everything written, as frames a client reads (the 101 answer skipped). */
  frames(): [number, string][] {
    const all = this.writes.flatMap((chunk) => [...chunk]);
    const start = new TextDecoder().decode(new Uint8Array(all)).indexOf("\r\n\r\n");
    const frames: [number, string][] = [];
    const sink: FrameSink = {
      onMessage: (data) => frames.push([1, typeof data === "string" ? data : "binary"]),
      onPing: () => frames.push([Opcode.ping, ""]),
      onPong: (payload) => frames.push([Opcode.pong, new TextDecoder().decode(payload)]),
      onClose: (code, reason) => frames.push([Opcode.close, `${code} ${reason}`]),
      onFail: (code, reason) => frames.push([-1, `${code} ${reason}`]),
    };
    new FrameReader({ maxMessageBytes: 1 << 20, masked: false }, sink)
      .read(new Uint8Array(all.slice(start + 4)));
    return frames;
  }
}

const MASK = new Uint8Array([1, 2, 3, 4]);
const HTTP_101 = new TextEncoder().encode("HTTP/1.1 101 Switching Protocols\r\n\r\n");
const turn = () => new Promise((resolve) => setTimeout(resolve, 0));

function open(idleTimeout = 0, clock = new FakeClock()) {
  const conn = new FakeWire();
  const socket = new WebSocketConnection(conn as unknown as Socket, {
    maxMessageBytes: 1000,
    idleTimeout,
    scheduler: new TransportScheduler({ clock }),
  });
  const events: string[] = [];
  socket.addEventListener(
    "message",
    (event) => events.push(`message ${(event as MessageEvent).data}`),
  );
  socket.addEventListener("close", (event) => {
    const close = event as CloseEvent;
    events.push(`close ${close.code} ${close.wasClean}`);
  });
  socket.open(HTTP_101, new Uint8Array(0));
  return { conn, socket, events };
}

Deno.test("frames sent in one turn leave in one write, in order", async () => {
  const { conn, socket } = open();
  for (let i = 0; i < 100; i++) socket.send(`message ${i}`);
  socket.send("last");
  assert.equal(conn.writes.length, 0, "nothing is written before the turn's work is done");
  await turn();
  assert.equal(conn.writes.length, 1);
  const frames = conn.frames();
  assert.equal(frames.length, 101);
  assert.deepEqual(frames[0], [1, "message 0"]);
  assert.deepEqual(frames[100], [1, "last"]);
});

Deno.test("bufferedAmount counts the bytes queued here and those the socket still holds", async () => {
  const { conn, socket } = open();
  await turn();
  socket.send("x".repeat(100)); // 102 bytes on the wire
  assert.equal(socket.bufferedAmount, 102);
  await turn();
  assert.equal(conn.writes.length, 2, "handed to the socket");
  assert.equal(socket.bufferedAmount, 0, "the kernel took it all");
  conn.writableLength = 102;
  socket.send("y".repeat(10)); // queued behind it: 12 bytes
  assert.equal(socket.bufferedAmount, 114, "the socket holds what the kernel did not take");
  await turn();
  assert.equal(conn.writes.length, 3);
  assert.deepEqual(conn.frames().map(([, text]) => text.length), [100, 10]);
});

/** An open connection whose write of the frame "first" the kernel has not taken yet. */
async function openWithWriteUnderWay() {
  const opened = open();
  await turn();
  opened.conn.holdWrites = true;
  opened.socket.send("first");
  await turn();
  return opened;
}

Deno.test("frames sent while a write is under way leave joined in one write once it is done", async () => {
  const { conn, socket } = await openWithWriteUnderWay();
  assert.equal(conn.writes.length, 2, "the 101 answer, then the first frame");
  for (let i = 0; i < 3; i++) {
    socket.send(`waiting ${i}`);
    await turn();
  }
  assert.equal(conn.writes.length, 2, "nothing more while the write is under way");
  assert.equal(socket.bufferedAmount, 3 * 11);
  conn.finishWrites();
  await turn();
  assert.equal(conn.writes.length, 3, "the three frames in one write");
  assert.deepEqual(conn.frames().map(([, text]) => text), [
    "first",
    "waiting 0",
    "waiting 1",
    "waiting 2",
  ]);
});

/** A writer whose writes the kernel takes at once, as the native handle's small writes are. */
function immediateWriter(conn: FakeWire): ChunkWriter {
  return {
    buffered: 0,
    write(chunk) {
      conn.writes.push(chunk);
      return true;
    },
  };
}

Deno.test("with writes the kernel takes at once, each turn's frames leave in that turn, and the FIN after the close frame", async () => {
  const conn = new FakeWire();
  const socket = new WebSocketConnection(conn as unknown as Socket, {
    maxMessageBytes: 1000,
    idleTimeout: 0,
    writer: immediateWriter(conn),
    scheduler: new TransportScheduler(),
  });
  socket.open(HTTP_101, new Uint8Array(0));
  await Promise.resolve();
  assert.equal(conn.writes.length, 1, "the 101 answer, once the turn's work is done");
  socket.send("one");
  socket.send("two");
  await Promise.resolve();
  assert.equal(conn.writes.length, 2, "one write for the turn");
  assert.equal(socket.bufferedAmount, 0);
  socket.send("three");
  await Promise.resolve();
  assert.equal(conn.writes.length, 3, "nothing waits on a callback");
  conn.receive(buildFrame(Opcode.close, new Uint8Array([0x03, 0xe8]), { mask: MASK }));
  assert.equal(conn.ended, false, "not before the close frame is written");
  await Promise.resolve();
  assert.equal(conn.ended, true);
  assert.deepEqual(conn.frames().map(([, text]) => text), ["one", "two", "three", "1000 "]);
});

Deno.test("frames waiting behind a write under way are joined by 64, in order", async () => {
  const { conn, socket } = await openWithWriteUnderWay();
  for (let i = 0; i < 130; i++) socket.send(`waiting ${i}`);
  assert.equal(socket.queuedBuffers, 2 + 2, "two joins of 64, then the last two frames");
  conn.finishWrites();
  await turn();
  assert.deepEqual(conn.frames().map(([, text]) => text), [
    "first",
    ...Array.from({ length: 130 }, (_, i) => `waiting ${i}`),
  ]);
});

Deno.test("a message sent to many connections in one turn is encoded once: they all write the same bytes", async () => {
  const frame = '{"event":"message","subscription":"books.1","data":"ü"}';
  const scheduler = new TransportScheduler();
  const connections = [0, 1, 2].map(() => {
    const conn = new FakeWire();
    const socket = new WebSocketConnection(conn as unknown as Socket, {
      maxMessageBytes: 1000,
      idleTimeout: 0,
      scheduler,
    });
    socket.open(HTTP_101, new Uint8Array(0));
    return { conn, socket };
  });
  await turn();
  for (const { socket } of connections) socket.send(frame);
  await turn();
  const [first, ...others] = connections.map(({ conn }) => conn.writes.at(-1));
  assert.deepEqual(first, textFrame(frame));
  for (const other of others) assert.equal(other, first, "the same buffer, not a copy");
});

Deno.test("a ping is answered with a pong carrying its payload", async () => {
  const { conn } = open();
  conn.receive(buildFrame(Opcode.ping, new TextEncoder().encode("hi"), { mask: MASK }));
  await turn();
  assert.deepEqual(conn.frames(), [[Opcode.pong, "hi"]]);
});

Deno.test("the client's close frame is echoed, then the server closes TCP first", async () => {
  const { conn, events } = open();
  conn.receive(buildFrame(Opcode.close, new Uint8Array([0x0f, 0xa1, 0x62]), { mask: MASK }));
  await turn();
  assert.deepEqual(conn.frames(), [[Opcode.close, "4001 b"]]);
  assert.ok(conn.ended, "the server sends its FIN first");
  assert.deepEqual(events, ["close 4001 true"]);
});

Deno.test("server close: the close frame follows what was sent; TCP closes at the client's answer", async () => {
  const { conn, socket, events } = open();
  socket.send("last words");
  socket.close(1001, "bye");
  assert.equal(socket.readyState, 2);
  socket.send("dropped: the connection is closing");
  await turn();
  assert.deepEqual(conn.frames(), [[1, "last words"], [Opcode.close, "1001 bye"]]);
  assert.ok(!conn.ended);
  conn.receive(buildFrame(Opcode.close, new Uint8Array([0x03, 0xe9]), { mask: MASK }));
  await turn();
  assert.ok(conn.ended);
  assert.deepEqual(events, ["close 1001 true"]);
});

Deno.test("a protocol error sends its close code, stops reading, half-closes and drops further input", async () => {
  const { conn, events } = open();
  assert.equal(conn.paused, false);
  conn.receive(buildFrame(Opcode.text, new TextEncoder().encode("unmasked")));
  assert.ok(conn.paused, "reading stops at once");
  await turn();
  assert.deepEqual(conn.frames(), [[Opcode.close, "1002 unmasked frame from a client"]]);
  assert.ok(conn.ended, "half-closed");
  assert.deepEqual(events, ["close 1002 false"]);
  conn.receive(buildFrame(Opcode.text, new TextEncoder().encode("ignored"), { mask: MASK }));
  await turn();
  assert.deepEqual(events, ["close 1002 false"]);
  conn.destroy();
});

Deno.test("invalid close codes given to close() throw, as on WebSocket", () => {
  const { socket } = open();
  assert.throws(() => socket.close(1005), { name: "InvalidAccessError" });
  assert.throws(() => socket.close(1000, "x".repeat(124)), { name: "SyntaxError" });
});

const pings = (conn: FakeWire) => conn.frames().filter(([opcode]) => opcode === Opcode.ping).length;

Deno.test("a client that stays silent is pinged after half the idle timeout, dropped after the other half (fake clock)", async () => {
  const clock = new FakeClock();
  const { conn, events } = open(1, clock);
  clock.tick(499);
  await turn();
  assert.equal(pings(conn), 0, "not before half of the idle timeout");
  // The sweeper looks every eighth of the half (62.5 ms): the ping comes at most that late.
  clock.tick(63);
  await turn();
  assert.equal(pings(conn), 1);
  assert.deepEqual(events, []);
  clock.tick(437);
  assert.deepEqual(events, [], "not dropped before the whole idle timeout");
  clock.tick(126);
  await turn();
  assert.deepEqual(conn.frames().at(-1), [Opcode.close, "1011 keep-alive timeout"]);
  assert.deepEqual(events, ["close 1006 false"]);
  assert.ok(conn.paused, "a lost keep-alive stops reading too");
  assert.equal(clock.pending, 0, "the sweeper stopped with its last connection");
  conn.destroy();
});

Deno.test("a client that answers the ping stays connected (fake clock)", async () => {
  const clock = new FakeClock();
  const { conn, socket, events } = open(1, clock);
  clock.tick(563);
  await turn();
  assert.equal(pings(conn), 1);
  conn.receive(buildFrame(Opcode.pong, new Uint8Array(0), { mask: MASK }));
  // Silent again after its pong: pinged once more, never dropped in between.
  clock.tick(563);
  await turn();
  assert.equal(pings(conn), 2);
  clock.tick(400);
  assert.deepEqual(events, []);
  assert.equal(socket.readyState, 1);
  socket.close(1000);
  conn.destroy();
});

Deno.test("a writer that calls back from inside write() does not stall the outbox", async () => {
  const conn = new FakeWire();
  const writer: ChunkWriter = {
    buffered: 0,
    write(chunk, done) {
      conn.writes.push(chunk);
      done();
      return false;
    },
  };
  const socket = new WebSocketConnection(conn as unknown as Socket, {
    maxMessageBytes: 1000,
    idleTimeout: 0,
    writer,
    scheduler: new TransportScheduler(),
  });
  socket.open(HTTP_101, new Uint8Array(0));
  await turn();
  for (const text of ["one", "two", "three"]) {
    socket.send(text);
    await turn();
  }
  assert.deepEqual(conn.frames().map(([, text]) => text), ["one", "two", "three"]);
  socket.close(1000);
  conn.destroy();
});

Deno.test("sending, receiving and closing read no constant of the global WebSocket", async () => {
  // In Deno the global `WebSocket` is an accessor: reading `WebSocket.OPEN`
  // on every send made burst fan-out on the own transport ~2.5 times slower.
  const real = Object.getOwnPropertyDescriptor(globalThis, "WebSocket")!;
  const reads: string[] = [];
  const counting = new Proxy(globalThis.WebSocket, {
    get(target, key, receiver) {
      reads.push(String(key));
      return Reflect.get(target, key, receiver);
    },
  });
  Object.defineProperty(globalThis, "WebSocket", { get: () => counting, configurable: true });
  try {
    const { conn, socket } = open();
    for (let i = 0; i < 10; i++) socket.send(`message ${i}`);
    conn.receive(buildFrame(Opcode.text, new TextEncoder().encode("hi"), { mask: MASK }));
    await turn();
    socket.close(1000);
    await turn();
    conn.destroy();
  } finally {
    Object.defineProperty(globalThis, "WebSocket", real);
  }
  assert.deepEqual(reads, []);
});
