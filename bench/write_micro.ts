/**
 * Server CPU per write when each of N connections gets one small frame per
 * turn (the shape of paced and windowed fan-out), by write path: `Deno.Conn`
 * (`write`, an async op and a promise per call), its `writable` stream, a
 * `node:net` socket (handed to the kernel at once), and that socket's
 * native handle as Shark's transport writes it
 * (`cli/transport/chunk_writer.ts`). Each connection has a read pending, as
 * a WebSocket server's have. The clients (a second process, on CPU 1) only
 * read.
 *
 * ```sh
 * taskset -c 0 deno run -A bench/write_micro.ts conn 5000 30   # conn | writable | net | handle
 * ```
 *
 * @module
 */
import net from "node:net";
import process from "node:process";
import { chunkWriter, streamWrap, WriteRequests } from "../cli/transport/chunk_writer.ts";

/** Rounds not measured: the first ones warm the JIT and the kernel's buffers. */
const WARM_UP = 3;

interface Target {
  write(bytes: Uint8Array): void;
}

/** The client process: N connections that read and drop everything. */
async function clients(port: number, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const socket = net.connect({ port, host: "127.0.0.1", localAddress: `127.0.0.${1 + i % 8}` });
    socket.on("data", () => {}).on("error", () => {});
    if (i % 200 === 199) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  setInterval(() => {}, 1000);
}

let pending = 0;

/** Accepts connections on the `mode`'s path; returns the port and the targets as they come. */
async function listen(mode: string, targets: Target[]): Promise<number> {
  if (mode === "net" || mode === "handle") {
    const requests = new WriteRequests(streamWrap()!);
    const server = net.createServer((socket) => {
      socket.on("data", () => {}).on("error", () => {});
      if (mode === "net") targets.push({ write: (bytes) => socket.write(bytes) });
      else {
        const writer = chunkWriter(socket, requests);
        targets.push({ write: (bytes) => writer.write(bytes, () => {}) });
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return (server.address() as net.AddressInfo).port;
  }
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    for await (const conn of listener) {
      (async () => {
        const buffer = new Uint8Array(2048);
        while (await conn.read(buffer).catch(() => null) !== null);
      })();
      const done = () => pending--;
      const writer = mode === "writable" ? conn.writable.getWriter() : undefined;
      targets.push({
        write(bytes) {
          pending++;
          (writer ? writer.write(bytes) : conn.write(bytes)).then(done, done);
        },
      });
    }
  })();
  return (listener.addr as Deno.NetAddr).port;
}

async function main(): Promise<void> {
  const [mode = "conn", count = "5000", rounds = "30"] = Deno.args;
  if (mode === "--client") return clients(Number(count), Number(rounds));
  const n = Number(count);
  const targets: Target[] = [];
  const port = await listen(mode, targets);
  const client = new Deno.Command("taskset", {
    args: [
      "-c",
      "1",
      Deno.execPath(),
      "run",
      "-A",
      import.meta.filename!,
      "--client",
      `${port}`,
      `${n}`,
    ],
    stdout: "null",
  }).spawn();
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  while (targets.length < n) await sleep(50);
  await sleep(300);
  // A text frame of 216 bytes, about a delivery's size.
  const frame = new Uint8Array(220).fill(65);
  frame.set([0x81, 126, 0, 216]);
  let cpuUs = 0;
  for (let round = 0; round < Number(rounds); round++) {
    const before = process.cpuUsage();
    for (const target of targets) target.write(frame);
    while (pending > 0) await sleep(0);
    const used = process.cpuUsage(before);
    if (round >= WARM_UP) cpuUs += used.user + used.system;
    await sleep(30);
  }
  const writes = (Number(rounds) - WARM_UP) * n;
  console.log(
    JSON.stringify({ mode, connections: n, cpu_us_per_write: +(cpuUs / writes).toFixed(2) }),
  );
  client.kill();
  Deno.exit(0);
}

if (import.meta.main) await main();
