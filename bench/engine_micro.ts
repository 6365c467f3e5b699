/**
 * The engine's own JavaScript per envelope and per delivery, without sockets
 * or Redis: the memory adapter and sockets whose `send` only counts. What the
 * network scenarios cannot separate from Deno's write path and the kernel.
 *
 * ```sh
 * deno run -A bench/engine_micro.ts                 # topics: 5,000 topics × 1 subscriber
 * deno run -A bench/engine_micro.ts 1 5000 200      # fanout: 1 topic × 5,000 subscribers
 * deno run -A bench/engine_micro.ts 5000 1 100000 --no-metadata
 * ```
 *
 * Prints µs of engine JavaScript per envelope and per delivery for 6 rounds
 * (the first ones include JIT warm-up); the minimum is the figure to compare.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Engine, MemoryPubSub } from "../mod.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: { "no-metadata": { type: "boolean", default: false } },
});
const [topics, perTopic, envelopes] = [5000, 1, 100_000].map((fallback, i) =>
  Number(positionals[i] ?? fallback)
);

/** A server-side socket that accepts every frame and only counts them. */
class CountingSocket extends EventTarget {
  readyState = 1;
  bufferedAmount = 0;
  binaryType = "arraybuffer";
  sent = 0;
  send(): void {
    this.sent++;
  }
  close(): void {}
}

const sockets: CountingSocket[] = [];
const pubsub = new MemoryPubSub();
const engine = new Engine({
  services: { bench: { require_authentication: false } },
  delivery: { metadata: !values["no-metadata"] },
}, {
  pubsub,
  upgradeWebSocket: () => {
    const socket = new CountingSocket();
    sockets.push(socket);
    return { socket: socket as unknown as WebSocket, response: new Response(null) };
  },
});
await engine.started;

const upgrade = new Request("http://bench/", { headers: { upgrade: "websocket" } });
for (let topic = 0; topic < topics; topic++) {
  for (let i = 0; i < perTopic; i++) {
    engine.handle(upgrade);
    const subscribe = JSON.stringify({ event: "subscribe", subscription: `bench.t${topic}` });
    sockets.at(-1)!.dispatchEvent(new MessageEvent("message", { data: subscribe }));
  }
}
while (engine.metrics.subscriptionsOpen < topics * perTopic) {
  await new Promise((resolve) => setTimeout(resolve, 10));
}

const payloads = Array.from(
  { length: envelopes },
  (_, i) =>
    JSON.stringify({ subscription: `bench.t${i % topics}`, data: { i, text: "hello world" } }),
);
const sent = () => sockets.reduce((total, socket) => total + socket.sent, 0);
console.log(`${topics} topics × ${perTopic} subscribers, ${envelopes} envelopes per round`);
for (let round = 1; round <= 6; round++) {
  const before = sent();
  const started = performance.now();
  for (let i = 0; i < envelopes; i++) pubsub.publish(`bench.t${i % topics}`, payloads[i]);
  while (engine.metrics.queued > 0 || sent() - before < envelopes * perTopic) {
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  const micros = (performance.now() - started) * 1000;
  const deliveries = sent() - before;
  console.log(
    `round ${round}: ${(micros / envelopes).toFixed(2)} µs/envelope, ` +
      `${(micros / deliveries).toFixed(3)} µs/delivery`,
  );
}
await engine.shutdown();
