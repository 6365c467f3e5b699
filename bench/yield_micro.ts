/**
 * How soon a socket read is served while the event loop runs a chain of
 * 5 ms tasks, by the way each task hands over to the next: `setImmediate`,
 * a `MessageChannel` message, a 0 ms timer, a `crypto.subtle.digest` of
 * nothing, or a byte through a loopback socket. In Deno only the timer and
 * the digest let a ready read in before the next task; the timer idles the
 * loop about 2 ms a hop (a third of the tasks lost), the digest does not.
 * (The pacers tried for reconnect storms, `bench/RESULTS.md`, hopped by
 * timer, then by digest.)
 *
 * A child process (this file with `--client PORT`) writes its send time to
 * a loopback socket every 10 ms; this process reads it while the chain runs
 * for 3 s and prints, per hand-over, the tasks run and the read latency.
 *
 * Usage: `deno run -A bench/yield_micro.ts`
 *
 * @module
 */
import net from "node:net";
import { parseArgs } from "node:util";

const { values } = parseArgs({ args: Deno.args, options: { client: { type: "string" } } });

/** Hands `task` over to a later task of the event loop. */
type Hop = (task: () => void) => void;

const HOPS: Record<string, () => Hop> = {
  setImmediate: () => (task) => void setImmediate(task),
  MessageChannel: () => {
    const channel = new MessageChannel();
    let next = () => {};
    channel.port1.onmessage = () => next();
    return (task) => {
      next = task;
      channel.port2.postMessage(null);
    };
  },
  "setTimeout 0": () => (task) => void setTimeout(task, 0),
  // A web-standard call that completes on another thread: it comes back in
  // the same poll as the sockets that are ready, without a timer's idle.
  "subtle.digest": () => {
    const nothing = new Uint8Array(0);
    return (task) => void crypto.subtle.digest("SHA-1", nothing).then(task);
  },
  // One byte through a loopback socket of its own: its read is served like
  // any other socket's, and yet it starves them as MessageChannel does.
  "socket byte": () => {
    let next = () => {};
    let writer: net.Socket | undefined;
    const reader = net.createServer((socket) => void socket.on("data", () => next()));
    reader.listen(0, "127.0.0.1", () => {
      writer = net.connect((reader.address() as net.AddressInfo).port, "127.0.0.1");
      writer.setNoDelay(true);
    });
    reader.unref();
    const byte = new Uint8Array(1);
    return (task) => {
      next = task;
      writer!.write(byte);
    };
  },
};

const TASK_MS = 5;
const RUN_MS = 3000;

async function client(port: number): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const encoder = new TextEncoder();
  const timer = setInterval(
    () => conn.write(encoder.encode(`${Date.now()}\n`)).catch(() => {}),
    10,
  );
  await new Promise((resolve) => setTimeout(resolve, RUN_MS + 500));
  clearInterval(timer);
  conn.close();
}

async function measure(name: string, hop: Hop): Promise<string> {
  const latencies: number[] = [];
  const server = net.createServer((socket) => {
    let buffer = "";
    socket.on("data", (chunk) => {
      buffer += chunk.toString();
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        latencies.push(Date.now() - Number(buffer.slice(0, newline)));
        buffer = buffer.slice(newline + 1);
      }
    });
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, "--client", String(port)],
  }).spawn();
  await new Promise((resolve) => setTimeout(resolve, 300));
  let tasks = 0;
  const end = performance.now() + RUN_MS;
  await new Promise<void>((resolve) => {
    const step = () => {
      if (performance.now() >= end) return resolve();
      const until = performance.now() + TASK_MS;
      while (performance.now() < until) { /* the task's work */ }
      tasks++;
      hop(step);
    };
    step();
  });
  await child.status;
  server.close();
  const sorted = latencies.sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))];
  return `${name.padEnd(15)} ${
    String(tasks).padStart(4)
  } tasks of ${TASK_MS} ms, ${sorted.length} ` +
    `reads: p50 ${at(0.5)} / p99 ${at(0.99)} / max ${sorted.at(-1)} ms`;
}

if (import.meta.main) {
  if (values.client) {
    await client(Number(values.client));
  } else {
    const hops = Object.entries(HOPS).map(([name, make]) => [name, make()] as const);
    // The socket hop's connection is made before the chains start.
    await new Promise((resolve) => setTimeout(resolve, 300));
    for (const [name, hop] of hops) console.log(await measure(name, hop));
    // The MessageChannel's port would keep the process alive.
    Deno.exit(0);
  }
}
