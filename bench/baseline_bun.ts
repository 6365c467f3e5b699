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
import { answer, baselineOptions, type BaselineSession } from "./_baseline_protocol.ts";

/** The parts of Bun's API this file uses (it is type-checked by Deno). */
interface BunSocket {
  data: { session?: BaselineSession };
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

const options = baselineOptions(process.argv.slice(2));

const redis = new Bun.RedisClient(options.redisUrl);
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

function onMessage(socket: BunSocket, message: string | Uint8Array): Promise<void> {
  const session: BaselineSession = socket.data.session ??= {
    send: (text) => socket.send(text),
    join: (topic) => join(topic, socket),
  };
  return answer(String(message), session, options);
}

process.on("SIGTERM", () => process.exit(0));

const server: BunServer = Bun.serve({
  hostname: "127.0.0.1",
  port: options.port,
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
console.error(JSON.stringify({ message: "listening", port: options.port }));
