/**
 * The reference server the benchmarks measure Shark against: `Deno.serve`,
 * `Deno.upgradeWebSocket` and one Redis subscriber, nothing else. No auth
 * check, no rules, no metadata, no metrics, no logging: each published
 * message is parsed once, serialized with ONE `JSON.stringify` and written
 * to every socket of its topic in a single synchronous loop. It is the
 * ceiling, not a product.
 *
 * It speaks just enough of the client protocol for the load generator:
 * `auth` (always ok), `subscribe` (ok once the Redis channel is subscribed)
 * and `ping`. With `--callbacks ORIGIN`, `auth` and `subscribe` first POST
 * to ORIGIN's `/auth`, `/authorize` and `/before_subscribe` like Shark does
 * (one `fetch` each, the reply read with `json()`), so that the subrate
 * ceiling includes the same HTTP work. Sockets keep Deno's default `idleTimeout` (30 s: a ping after
 * 15 s of client silence), the same keep-alive as Shark's default `ws_ping`.
 *
 * Usage: `deno run -A bench/baseline_raw.ts --port 9100 --redis-url redis://127.0.0.1:6379`
 *
 * @module
 */
import { createClient } from "@redis/client";
import { answer, baselineOptions, type BaselineSession } from "./_baseline_protocol.ts";

// With `--callbacks ORIGIN`, auth and subscribe make the same three callbacks
// as Shark in the subrate scenario (ticket, authorizer, before_subscribe).
const options = baselineOptions(Deno.args);

/** Sockets by topic; a topic is in the map once its Redis channel is subscribed. */
const topics = new Map<string, Set<WebSocket>>();
/** Redis SUBSCRIBEs in flight, so that concurrent first subscribers wait for the same one. */
const subscribing = new Map<string, Promise<void>>();

const redis = createClient({ url: options.redisUrl });
redis.on("error", (error: unknown) => console.error(`baseline: redis error: ${error}`));
await redis.connect();

function onPublish(payload: string, channel: string): void {
  const sockets = topics.get(channel);
  if (!sockets) return;
  let data: unknown;
  try {
    data = JSON.parse(payload).data;
  } catch {
    return;
  }
  const frame = JSON.stringify({ event: "message", subscription: channel, data });
  for (const socket of sockets) {
    if (socket.readyState === WebSocket.OPEN) socket.send(frame);
  }
}

async function join(topic: string, socket: WebSocket): Promise<void> {
  let sockets = topics.get(topic);
  if (!sockets) {
    let pending = subscribing.get(topic);
    if (!pending) {
      pending = redis.subscribe(topic, onPublish);
      subscribing.set(topic, pending);
    }
    await pending;
    subscribing.delete(topic);
    sockets = topics.get(topic);
    if (!sockets) topics.set(topic, sockets = new Set());
  }
  sockets.add(socket);
}

function session(socket: WebSocket): void {
  const joined = new Set<string>();
  const state: BaselineSession = {
    send: (text) => socket.send(text),
    async join(topic) {
      await join(topic, socket);
      joined.add(topic);
    },
  };
  socket.onmessage = (event) => answer(event.data, state, options);
  socket.onclose = () => {
    for (const topic of joined) topics.get(topic)?.delete(socket);
  };
}

// A clean exit on SIGTERM, so that `--cpu-prof` can write its profile.
Deno.addSignalListener("SIGTERM", () => Deno.exit(0));

Deno.serve({
  hostname: "127.0.0.1",
  port: options.port,
  onListen: ({ port }) => console.error(JSON.stringify({ message: "listening", port })),
}, (request) => {
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return new Response('{"status":"ok"}', { headers: { "content-type": "application/json" } });
  }
  const { socket, response } = Deno.upgradeWebSocket(request);
  session(socket);
  return response;
});
