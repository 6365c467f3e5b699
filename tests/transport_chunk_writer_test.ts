/**
 * How the transport hands output to a socket (`cli/transport/chunk_writer.ts`),
 * over real `node:net` sockets on loopback: through the native handle, a
 * write the kernel takes at once is done there and then; one it cannot take
 * calls back once it has, counted meanwhile, its bytes kept on its request;
 * a failed write ends the socket; a completion nobody waited for is counted.
 * The start-up self-check (`writer_check.ts`) chooses the handle writer here
 * and the stream writer where a check fails.
 */
import assert from "node:assert/strict";
import net from "node:net";
import {
  chunkWriter,
  HandleWriter,
  type NativeHandle,
  streamWrap,
  type StreamWrapBinding,
  type WriteRequest,
  WriteRequests,
} from "../cli/transport/chunk_writer.ts";
import { checkWriter, chooseWriter } from "../cli/transport/writer_check.ts";
import { waitUntil } from "./helpers/wait.ts";

/** The handle writer's requests of this runtime. */
const requests = () => new WriteRequests(streamWrap()!);

/** A connected pair: `server` (the accepted socket) and `client`; closed on dispose. */
async function socketPair() {
  const listener = net.createServer();
  const accepted = new Promise<net.Socket>((resolve) => listener.once("connection", resolve));
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  const client = net.connect((listener.address() as net.AddressInfo).port, "127.0.0.1");
  client.on("error", () => {});
  const server = await accepted;
  server.on("error", () => {});
  // The first write of a connection may wait on the runtime's own set-up: once the client
  // has read a first byte, writes the kernel can take are taken at once.
  const first = new Promise((resolve) => client.once("data", resolve));
  server.write(new Uint8Array(1));
  await first;
  return {
    server,
    client,
    async [Symbol.asyncDispose]() {
      client.destroy();
      server.destroy();
      await new Promise((resolve) => listener.close(resolve));
    },
  };
}

/** Collects what `socket` receives. */
function received(socket: net.Socket): { bytes: () => Uint8Array } {
  const chunks: Uint8Array[] = [];
  socket.on("data", (chunk: Uint8Array) => chunks.push(chunk));
  return { bytes: () => new Uint8Array(chunks.flatMap((chunk) => [...chunk])) };
}

Deno.test("the self-check chooses the handle writer on this runtime", async () => {
  assert.deepEqual(await chooseWriter(), { kind: "handle", why: "self-check passed" });
});

Deno.test("a write the kernel takes at once is done when write returns, with no callback", async () => {
  await using pair = await socketPair();
  const got = received(pair.client);
  const writer = chunkWriter(pair.server, requests());
  let called = 0;
  const small = new TextEncoder().encode("0123456789");
  assert.equal(writer.write(small.subarray(2, 7), () => called++), true);
  assert.equal(writer.buffered, 0);
  await waitUntil(() => got.bytes().length === 5, 5000, "the bytes arrive");
  assert.equal(new TextDecoder().decode(got.bytes()), "23456", "a view writes its own bytes only");
  assert.equal(called, 0);
});

Deno.test("a write the kernel cannot take at once is counted until it is, then calls back; bytes arrive in order", async () => {
  await using pair = await socketPair();
  pair.client.pause();
  const writer = chunkWriter(pair.server, requests());
  const big = new Uint8Array(32 * 1024 * 1024).fill(1);
  const done: string[] = [];
  assert.equal(
    writer.write(big, () => done.push("big")),
    false,
    "the kernel's buffers are smaller",
  );
  assert.equal(writer.buffered, big.byteLength);
  assert.equal(writer.write(new Uint8Array([2, 3]), () => done.push("small")), false, "behind it");
  assert.equal(writer.buffered, big.byteLength + 2);
  let total = 0;
  let last = 0;
  pair.client.on("data", (chunk: Uint8Array) => {
    total += chunk.byteLength;
    last = chunk[chunk.byteLength - 1];
  });
  pair.client.resume();
  await waitUntil(() => done.length === 2, 20_000, "both writes done");
  assert.deepEqual(done, ["big", "small"]);
  assert.equal(writer.buffered, 0);
  await waitUntil(() => total === big.byteLength + 2, 20_000, "every byte read");
  assert.equal(last, 3);
});

Deno.test("a write to a connection the client reset destroys the socket", async () => {
  await using pair = await socketPair();
  const writer = chunkWriter(pair.server, requests());
  let closed = false;
  pair.server.on("close", () => closed = true);
  pair.client.resetAndDestroy();
  const chunk = new Uint8Array(1024);
  for (let attempt = 0; attempt < 200 && !closed; attempt++) {
    writer.write(chunk, () => {});
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assert.equal(closed, true, "the failed write ended the socket");
  assert.equal(pair.server.destroyed, true);
});

Deno.test("a socket without a native handle it knows (node:tls, a test's fake) is written through write()", () => {
  const writes: Uint8Array[] = [];
  const callbacks: (() => void)[] = [];
  const fake = {
    writableLength: 7,
    write(chunk: Uint8Array, callback: () => void) {
      writes.push(chunk);
      callbacks.push(callback);
      return true;
    },
  };
  const writer = chunkWriter(fake as unknown as net.Socket, undefined);
  let done = false;
  assert.equal(writer.write(new Uint8Array([1]), () => done = true), false, "done is called back");
  assert.equal(writes.length, 1);
  assert.equal(writer.buffered, 7, "what the socket holds");
  callbacks[0]();
  assert.equal(done, true);
});

/**
 * A runtime that does not copy a write's bytes and does not keep them
 * alive: its native side holds a pointer and the request, as Node.js's
 * does, and reads the bytes when the kernel takes them. Memory that nothing
 * holds may be reused meanwhile (as the allocator may after a collection):
 * here it always is, unless the request holds the bytes.
 */
function nonCopyingRuntime() {
  const state = new Int32Array(1);
  const binding: StreamWrapBinding = {
    WriteWrap: class {} as unknown as new () => WriteRequest,
    streamBaseState: state,
    kLastWriteWasAsync: 0,
  };
  const pending: [WriteRequest, Uint8Array][] = [];
  const sent: number[][] = [];
  const handle: NativeHandle = {
    writeBuffer(request, data) {
      state[0] = 1;
      pending.push([request, data]);
      return 0;
    },
  };
  return {
    binding,
    handle,
    sent,
    /**
     * The kernel takes every pending write: the bytes are read from memory
     * now, after memory that the request does not hold was reused.
     */
    complete() {
      for (const [request, data] of pending.splice(0)) {
        if (request.buffer !== data) data.fill(0xee);
        sent.push([...data]);
        request.oncomplete.call(request, 0);
      }
    },
    pending,
  };
}

Deno.test("a write that waits keeps its bytes on its request: correct even where the runtime does not copy them", () => {
  const runtime = nonCopyingRuntime();
  const pool = new WriteRequests(runtime.binding);
  const writer = new HandleWriter({ destroy: () => {} } as net.Socket, runtime.handle, pool);
  let done = 0;
  assert.equal(writer.write(new Uint8Array([1, 2, 3]), () => done++), false);
  assert.equal(writer.buffered, 3);
  runtime.complete();
  assert.deepEqual(runtime.sent, [[1, 2, 3]], "the bytes written, not reused memory");
  assert.equal(done, 1);
  assert.equal(writer.buffered, 0);
  assert.equal(runtime.pending.length, 0);
});

Deno.test("a completion for a request that did not wait is counted and reported once, never answered", async () => {
  await using pair = await socketPair();
  let reported = 0;
  const pool = new WriteRequests(streamWrap()!, () => reported++);
  const writer = chunkWriter(pair.server, pool);
  let done = 0;
  assert.equal(writer.write(new Uint8Array([1]), () => done++), true, "taken at once");
  const spare = pool.spare!;
  spare.oncomplete.call(spare, 0);
  spare.oncomplete.call(spare, 0);
  assert.equal(pool.unexpected, 2);
  assert.equal(reported, 1, "reported once");
  assert.equal(done, 0, "nobody is called back for it");
  assert.equal(writer.buffered, 0);
});

Deno.test("the self-check refuses a writer that breaks a rule, naming it", async () => {
  await using pair = await socketPair();
  const pool = requests();
  const real = chunkWriter(pair.server, pool);
  const twice = {
    get buffered() {
      return real.buffered;
    },
    write(chunk: Uint8Array, done: () => void) {
      return real.write(chunk, () => {
        done();
        done();
      });
    },
  };
  assert.equal(
    await checkWriter(twice, pool, pair.client),
    "a write that waited completed 2 times",
  );
  await using other = await socketPair();
  const early = {
    buffered: 0,
    write(chunk: Uint8Array, done: () => void) {
      if (chunk.byteLength <= 16) return true;
      done();
      return false;
    },
  };
  assert.equal(
    await checkWriter(early, requests(), other.client),
    "a write that waits called back from inside write()",
  );
});
