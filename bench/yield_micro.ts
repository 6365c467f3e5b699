/**
 * How soon a socket read is served while the event loop runs a chain of
 * 5 ms tasks, by the way each task hands over to the next: `setImmediate`,
 * a `MessageChannel` message, or a 0 ms timer. The pacer
 * (`src/session/pacer.ts`) hops by timer because of what this prints: in
 * Deno only the timer lets a ready read in before the next task.
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
    for (const [name, make] of Object.entries(HOPS)) console.log(await measure(name, make()));
    // The MessageChannel's port would keep the process alive.
    Deno.exit(0);
  }
}
