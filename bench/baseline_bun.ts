/**
 * The raw Bun reference server: `Bun.serve` (uWebSockets), its built-in
 * topic pub/sub and Bun's own Redis client, nothing else. It speaks the same
 * subset of the client protocol as `baseline_raw.ts` (`auth` always ok,
 * `subscribe` ok once the Redis channel is subscribed, `ping`), and with
 * `--callbacks ORIGIN` makes the same three callbacks through Bun's `fetch`.
 * A published message is parsed once, serialized once and handed to
 * `server.publish`, which writes it to every socket of the topic in C++.
 *
 * It runs under Bun, not Deno: `deno task bench storm` starts it with the
 * `bun` on PATH, else the one `npx -y bun@1.4.5` brings (the npm registry's
 * `@oven/bun-*` packages), and skips it loudly when neither works.
 *
 * Usage: `bun bench/baseline_bun.ts --port 9100 --redis-url redis://127.0.0.1:6379`
 *
 * @module
 */
import { parseArgs } from "node:util";

/** The parts of Bun's API this file uses (it is type-checked by Deno). */
interface BunSocket {
  data: { userId?: unknown };
  send(text: string): void;
  subscribe(topic: string): void;
}
interface BunServer {
  upgrade(request: Request, options: { data: BunSocket["data"] }): boolean;
  publish(topic: string, text: string): void;
}
interface BunRedis {
  connect(): Promise<void>;
  subscribe(channel: string, listener: (message: string, channel: string) => void): Promise<void>;
}
declare const Bun: {
  serve(options: {
    hostname: string;
    port: number;
    fetch(request: Request, server: BunServer): Response | undefined;
    websocket: {
      idleTimeout: number;
      message(socket: BunSocket, message: string | Uint8Array): void | Promise<void>;
    };
  }): BunServer;
  RedisClient: new (url: string) => BunRedis;
};

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    port: { type: "string", default: "9100" },
    "redis-url": { type: "string", default: "redis://127.0.0.1:6379" },
    callbacks: { type: "string" },
  },
});

/** POSTs a JSON body to the callback service and reads its JSON reply. */
async function callback(path: string, body: unknown): Promise<Record<string, unknown>> {
  const response = await fetch(`${values.callbacks}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return await response.json();
}

const redis = new Bun.RedisClient(values["redis-url"]!);
await redis.connect();
/** Redis SUBSCRIBEs done or in flight, by channel. */
const subscribed = new Map<string, Promise<void>>();

function onPublish(payload: string, channel: string): void {
  let data: unknown;
  try {
    data = JSON.parse(payload).data;
  } catch {
    return;
  }
  server.publish(channel, JSON.stringify({ event: "message", subscription: channel, data }));
}

async function join(topic: string, socket: BunSocket): Promise<void> {
  let pending = subscribed.get(topic);
  if (!pending) subscribed.set(topic, pending = redis.subscribe(topic, onPublish));
  await pending;
  socket.subscribe(topic);
}

async function onMessage(socket: BunSocket, message: string | Uint8Array): Promise<void> {
  let request: Record<string, unknown>;
  try {
    request = JSON.parse(String(message));
  } catch {
    return;
  }
  switch (request.event) {
    case "auth":
      if (values.callbacks) {
        socket.data.userId = (await callback("/auth", { ticket: request.ticket })).user_id;
      }
      socket.send('{"event":"auth","status":"ok"}');
      return;
    case "ping":
      socket.send(JSON.stringify({ event: "pong", data: request.data ?? null }));
      return;
    case "subscribe": {
      const topic = String(request.subscription);
      // As in Shark's bench config, only the `secure` service has callbacks.
      if (values.callbacks && topic.startsWith("secure.")) {
        const userId = socket.data.userId;
        await callback("/authorize", { subscription: topic, user_id: userId });
        await callback("/before_subscribe", { subscription: topic, user_id: userId });
      }
      await join(topic, socket);
      socket.send(JSON.stringify({ event: "subscribe", subscription: topic, status: "ok" }));
      return;
    }
  }
}

process.on("SIGTERM", () => process.exit(0));

const server: BunServer = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(values.port),
  fetch(request, bun) {
    if (request.headers.get("upgrade")?.toLowerCase() === "websocket") {
      if (bun.upgrade(request, { data: {} })) return undefined;
      return new Response("upgrade failed", { status: 400 });
    }
    return new Response('{"status":"ok"}', { headers: { "content-type": "application/json" } });
  },
  // 30 s, as `baseline_raw.ts` keeps Deno's default.
  websocket: { idleTimeout: 30, message: onMessage },
});
console.error(JSON.stringify({ message: "listening", port: Number(values.port) }));
