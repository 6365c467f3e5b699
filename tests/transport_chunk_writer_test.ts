/**
 * How the transport hands output to a socket (`cli/transport/chunk_writer.ts`),
 * over real `node:net` sockets on loopback: through the native handle, a
 * write the kernel takes at once is done there and then; one it cannot take
 * calls back once it has, counted meanwhile; a failed write ends the socket.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { chunkWriter, writesThroughHandle } from "../cli/transport/chunk_writer.ts";
import { waitUntil } from "./helpers/wait.ts";

/** A connected pair: `server` (the accepted socket) and `client`; closed on dispose. */
async function socketPair() {
  const listener = net.createServer();
  const accepted = new Promise<net.Socket>((resolve) => listener.once("connection", resolve));
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  const client = net.connect((listener.address() as net.AddressInfo).port, "127.0.0.1");
  client.on("error", () => {});
  const server = await accepted;
  server.on("error", () => {});
  // The first write of a connection may wait on the runtime's own setup: let it settle.
  await new Promise((resolve) => setTimeout(resolve, 20));
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

Deno.test("this runtime's node:net sockets are written through their native handle", () => {
  assert.equal(writesThroughHandle, true);
});

Deno.test("a write the kernel takes at once is done when write returns, with no callback", async () => {
  await using pair = await socketPair();
  const got = received(pair.client);
  const writer = chunkWriter(pair.server);
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
  const writer = chunkWriter(pair.server);
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
  const writer = chunkWriter(pair.server);
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
  const writer = chunkWriter(fake as unknown as net.Socket);
  let done = false;
  assert.equal(writer.write(new Uint8Array([1]), () => done = true), false, "done is called back");
  assert.equal(writes.length, 1);
  assert.equal(writer.buffered, 7, "what the socket holds");
  callbacks[0]();
  assert.equal(done, true);
});
