/**
 * `deno run -A bench/limits.ts [rows...] [--transport shark|deno]`: the five
 * doors of issue 10, each tried as an attacker would against `main.ts` (a
 * fresh Shark per row), with the figures that show it is shut:
 *
 * - `frames`: clients each announcing a 50 MB frame (`max_message_bytes`
 *   64 KiB): Shark's resident memory before, at its peak and after, and how
 *   each connection ended (`--clients`, `--megabytes`, `--connect-first`
 *   opens every connection before any frame is sent; `--max-memory` MiB sets
 *   `server.max_memory_bytes`, `--per-address` `max_connections_per_address`);
 * - `halfopen`: 3,000 connections sending an unfinished HTTP request and
 *   then nothing: how many Shark still holds over time;
 * - `subscriptions`: one connection subscribing to 20,000 topics;
 * - `keys`: 200,000 distinct `order_key` and `throttle_key` values on one
 *   subscription, two envelopes each (the second waits for its throttle
 *   period), with the default `max_keys_per_subscription` and with no
 *   effective limit;
 * - `fanout`: a burst published faster than fan-out can deliver, with the
 *   default `max_fanout_queue_bytes` and with no effective limit.
 *
 * @module
 */
import type { RedisServer } from "../tests/helpers/redis_server.ts";
import { upgradeRequest } from "../tests/helpers/ws_frame.ts";
import { peakRssKiB } from "./_proc.ts";
import { connectClient } from "./_raw_ws.ts";
import { encodeCommand, RespConnection } from "./_resp.ts";
import {
  becomes,
  delay,
  type Figures,
  harnessArgs,
  log,
  type MetricValues,
  report,
  runHarness,
  SharkProcess,
  startRedis,
  WsClient,
} from "./_harness.ts";

const encoder = new TextEncoder();
const MIB = 1024 * 1024;

interface Context {
  readonly directory: string;
  readonly redis: RedisServer;
  /** `server.transport` when given (the CLI's listener). */
  readonly transport: string | undefined;
  readonly values: Record<string, string | boolean | undefined>;
}

async function startShark(context: Context, config: Record<string, unknown>) {
  return await SharkProcess.start(
    {
      ...config,
      pubsub: { adapter: "redis", redis: { url: context.redis.url() } },
      log: { level: "fatal" },
    },
    context.directory,
    context.transport,
  );
}

/** Samples Shark's resident memory every 20 ms until stopped; returns the peak (MiB). */
function peakSampler(shark: SharkProcess): () => number {
  let peak = shark.rssMiB();
  const timer = setInterval(() => peak = Math.max(peak, shark.rssMiB()), 20);
  return () => {
    clearInterval(timer);
    return Math.max(peak, shark.rssMiB());
  };
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let written = 0; written < bytes.length;) {
    written += await conn.write(bytes.subarray(written));
  }
}

/** A raw client subscribed to `topic` (its reply awaited), counting what it is sent with `onMessage`. */
async function subscriber(shark: SharkProcess, topic: string, onMessage: () => void) {
  const client = await connectClient("raw", {
    port: shark.port,
    sink: { message: onMessage },
    timeoutMs: 10_000,
  });
  client.send(JSON.stringify({ event: "subscribe", subscription: topic }));
  await client.reply(10_000);
  return client;
}

/** Reads until the stream ends: the first bytes read, and the close code of a close frame. */
function watch(conn: Deno.Conn) {
  let first = "";
  let code: number | null = null;
  const ended = (async () => {
    const chunk = new Uint8Array(65536);
    try {
      for (;;) {
        const n = await conn.read(chunk);
        if (n === null) return "eof";
        const text = new TextDecoder().decode(chunk.subarray(0, n));
        if (!first) first = text;
        // A close frame: opcode 8, then the code (server frames are unmasked).
        const at = chunk.subarray(0, n).findIndex((byte, i) => byte === 0x88 && i + 3 < n);
        if (at >= 0 && code === null) code = (chunk[at + 2] << 8) | chunk[at + 3];
      }
    } catch {
      return "reset";
    }
  })();
  return { ended, first: () => first, code: () => code };
}

// ---------------------------------------------------------------- frames

async function oversizedFrames(context: Context): Promise<Figures> {
  const clients = Number(context.values.clients ?? 100);
  const megabytes = Number(context.values.megabytes ?? 50);
  const connectFirst = context.values["connect-first"] === true;
  const maxMemory = context.values["max-memory"];
  const perAddress = context.values["per-address"];
  const shark = await startShark(context, {
    server: {
      max_message_bytes: 65536,
      ...(maxMemory ? { max_memory_bytes: Number(maxMemory) * MIB } : {}),
      ...(perAddress ? { max_connections_per_address: Number(perAddress) } : {}),
    },
  });
  const before = shark.rssMiB();
  const peak = peakSampler(shark);
  const size = megabytes * MIB;
  const header = new Uint8Array(14);
  header[0] = 0x82;
  header[1] = 0x80 | 127;
  new DataView(header.buffer).setBigUint64(2, BigInt(size));
  const block = new Uint8Array(MIB);
  const outcomes: Record<string, number> = {};
  let sentTotal = 0;
  const open = async () => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: shark.port });
    const watcher = watch(conn);
    await writeAll(conn, upgradeRequest(shark.port, btoa("limits-limits-li")));
    await becomes(() => watcher.first() !== "", 5000);
    return { conn, watcher, status: Number(watcher.first().split(" ")[1]) };
  };
  const attack = async (socket: Awaited<ReturnType<typeof open>>) => {
    const { conn, watcher, status } = socket;
    if (status !== 101) {
      outcomes[`refused_${status}`] = (outcomes[`refused_${status}`] ?? 0) + 1;
      conn.close();
      return;
    }
    let sent = 0;
    try {
      await writeAll(conn, header);
      while (sent < size) {
        await writeAll(conn, block.subarray(0, Math.min(block.length, size - sent)));
        sent += Math.min(block.length, size - sent);
      }
    } catch {
      // The server stopped reading or reset: what it refused to take.
    }
    sentTotal += sent;
    const ended = await Promise.race([watcher.ended, delay(10_000).then(() => "held")]);
    const outcome = watcher.code() !== null ? `closed_${watcher.code()}` : ended;
    outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    try {
      conn.close();
    } catch {
      // Closed already.
    }
  };
  const started = performance.now();
  if (connectFirst) {
    const sockets = await Promise.all(Array.from({ length: clients }, open));
    await Promise.all(sockets.map(attack));
  } else {
    await Promise.all(Array.from({ length: clients }, async (_, i) => {
      await delay(i * 20);
      await attack(await open());
    }));
  }
  const seconds = (performance.now() - started) / 1000;
  const peakMiB = peak();
  await delay(2000);
  const after = shark.rssMiB();
  const metrics = await shark.metrics();
  await shark.terminate();
  return {
    clients,
    frame_mb: megabytes,
    connect_first: connectFirst,
    max_memory_mib: maxMemory ? Number(maxMemory) : null,
    max_connections_per_address: perAddress ? Number(perAddress) : null,
    rss_before_mib: before,
    rss_peak_mib: peakMiB,
    rss_after_mib: after,
    peak_over_before_mib: peakMiB - before,
    mib_accepted_per_client: sentTotal / MIB / clients,
    outcomes: JSON.stringify(outcomes),
    closed_1009: metrics['shark_connections_closed_total{reason="message_too_big"}'] ?? 0,
    rejected_max_memory: metrics['shark_connections_rejected_total{reason="max_memory"}'] ?? 0,
    rejected_per_address:
      metrics['shark_connections_rejected_total{reason="max_connections_per_address"}'] ?? 0,
    seconds,
  };
}

// ---------------------------------------------------------------- half-open requests

async function halfOpen(context: Context): Promise<Figures> {
  const connections = Number(context.values.connections ?? 3000);
  const hold = Number(context.values.hold ?? 15);
  const shark = await startShark(context, { server: {} });
  const unfinished = encoder.encode("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n");
  let open = 0;
  const ends: Promise<unknown>[] = [];
  const conns: Deno.Conn[] = [];
  const started = performance.now();
  for (let batch = 0; batch < connections; batch += 200) {
    await Promise.all(Array.from({ length: Math.min(200, connections - batch) }, async () => {
      try {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: shark.port });
        await writeAll(conn, unfinished);
        conns.push(conn);
        open++;
        ends.push(watch(conn).ended.then(() => open--));
      } catch {
        // Refused: counted by the difference.
      }
    }));
  }
  const opened = open;
  const timeline: string[] = [];
  let allClosedAfter: number | null = null;
  while ((performance.now() - started) / 1000 < hold) {
    await delay(1000);
    const s = (performance.now() - started) / 1000;
    timeline.push(`${s.toFixed(0)}s:${open}`);
    if (open === 0 && allClosedAfter === null) allClosedAfter = s;
  }
  // A well-behaved client during the attack.
  let clientConnected = false;
  try {
    const client = await WsClient.connect(shark.wsUrl, 5000);
    clientConnected = true;
    client.close();
  } catch {
    // Could not connect.
  }
  const heldAtEnd = open;
  for (const conn of conns) {
    try {
      conn.close();
    } catch {
      // Closed by the server.
    }
  }
  await Promise.all(ends);
  const metrics = await shark.metrics();
  await shark.terminate();
  return {
    connections,
    opened,
    held_at_end: heldAtEnd,
    all_closed_after_s: allClosedAfter,
    hold_s: hold,
    timeline: timeline.join(" "),
    well_behaved_client_connected: clientConnected,
    rejected_handshake_timeout:
      metrics['shark_connections_rejected_total{reason="handshake_timeout"}'] ?? 0,
  };
}

// ---------------------------------------------------------------- subscriptions

async function subscriptions(context: Context): Promise<Figures> {
  const topics = Number(context.values.topics ?? 20_000);
  const shark = await startShark(context, {
    services: { many: { require_authentication: false } },
  });
  const before = shark.rssMiB();
  const client = await connectClient("raw", {
    port: shark.port,
    sink: { message() {} },
    timeoutMs: 10_000,
  });
  const replies: Record<string, number> = {};
  // Windows of 200: more events queued behind one another close the connection (1008).
  for (let start = 0; start < topics; start += 200) {
    const end = Math.min(topics, start + 200);
    for (let i = start; i < end; i++) {
      client.send(JSON.stringify({ event: "subscribe", subscription: `many.${i}` }));
    }
    for (let i = start; i < end; i++) {
      const reply = JSON.parse(await client.reply(30_000));
      const key = reply.status === "ok" ? "ok" : reply.error;
      replies[key] = (replies[key] ?? 0) + 1;
    }
  }
  const after = shark.rssMiB();
  const metrics = await shark.metrics();
  client.close();
  await shark.terminate();
  return {
    topics_tried: topics,
    replies: JSON.stringify(replies),
    subscriptions_open: metrics["shark_subscriptions_open"] ?? 0,
    limited_max_subscriptions: metrics['shark_limited_total{limit="max_subscriptions"}'] ?? 0,
    rss_before_mib: before,
    rss_after_mib: after,
  };
}

// ---------------------------------------------------------------- keys

async function keys(context: Context, maxKeys: number): Promise<Figures> {
  const distinct = Number(context.values.keys ?? 200_000);
  const shark = await startShark(context, {
    // The queue's own bound is another row: here it must not drop anything.
    server: { max_fanout_queue_bytes: 2 ** 40 },
    services: { keys: { require_authentication: false } },
    delivery: { metadata: false, max_keys_per_subscription: maxKeys },
  });
  let received = 0;
  const client = await subscriber(shark, "keys.1", () => received++);
  await delay(500);
  const before = shark.rssMiB();
  const publisher = await RespConnection.connect(context.redis.port);
  // Each key twice: the first goes out, the second waits 600 s for its throttle period.
  for (let start = 0; start < distinct; start += 1000) {
    let batch = "";
    const end = Math.min(distinct, start + 1000);
    for (let i = start; i < end; i++) {
      for (const order of [1, 2]) {
        const envelope = JSON.stringify({
          subscription: "keys.1",
          data: { i, order },
          options: { order, order_key: `o${i}`, throttle: 600, throttle_key: `t${i}` },
        });
        batch += encodeCommand(["PUBLISH", "keys.1", envelope]);
      }
    }
    await publisher.send(batch, 2 * (end - start));
  }
  // Unbounded, the second envelope of every key waits; bounded, it goes out when its key is forgotten.
  const expected = maxKeys < distinct ? 2 * distinct - maxKeys : distinct;
  await becomes(() => received >= expected, 120_000);
  // What is garbage is given time to be collected: V8 gives pages back within seconds.
  const settling: string[] = [];
  for (const seconds of [1, 5, 15, 30]) {
    await delay(seconds * 1000 - (settling.length ? [1, 5, 15][settling.length - 1] * 1000 : 0));
    settling.push(`${seconds}s:${shark.rssMiB().toFixed(0)}`);
  }
  const after = shark.rssMiB();
  const metrics = await shark.metrics();
  publisher.close();
  client.close();
  await shark.terminate();
  return {
    max_keys_per_subscription: maxKeys,
    distinct_keys: distinct,
    envelopes: 2 * distinct,
    delivered: received,
    expected_delivered: expected,
    rss_before_mib: before,
    rss_after_mib: after,
    rss_growth_mib: after - before,
    rss_after_burst_mib: settling.join(" "),
    forgotten_order_keys: metrics['shark_limited_total{limit="order_keys"}'] ?? 0,
    forgotten_throttle_keys: metrics['shark_limited_total{limit="throttle_keys"}'] ?? 0,
  };
}

// ---------------------------------------------------------------- fan-out queue

async function fanout(context: Context, maxQueueBytes: number | undefined): Promise<Figures> {
  const subscribers = Number(context.values.subscribers ?? 200);
  const envelopes = Number(context.values.burst ?? 8000);
  const secret = "limits-publish-secret";
  const shark = await startShark(context, {
    server: maxQueueBytes ? { max_fanout_queue_bytes: maxQueueBytes } : {},
    services: { fan: { require_authentication: false } },
    delivery: { metadata: false },
    publish_api: { secret },
  });
  let received = 0;
  const clients = [];
  for (let i = 0; i < subscribers; i++) {
    clients.push(await subscriber(shark, "fan.1", () => received++));
  }
  const publisher = await RespConnection.connect(context.redis.port);
  const text = "q".repeat(4000);
  let batch = "";
  for (let i = 0; i < envelopes; i++) {
    batch += encodeCommand([
      "PUBLISH",
      "fan.1",
      JSON.stringify({ subscription: "fan.1", data: { i, text } }),
    ]);
  }
  let maxBytes = 0;
  let maxQueued = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const metrics: MetricValues = await shark.metrics().catch(() => ({}));
      maxBytes = Math.max(maxBytes, metrics["shark_fanout_queue_bytes"] ?? 0);
      maxQueued = Math.max(maxQueued, metrics["shark_fanout_queue"] ?? 0);
      await delay(50);
    }
  })();
  const started = performance.now();
  const burst = publisher.send(batch, envelopes);
  await delay(200);
  const statuses: Record<string, number> = {};
  for (let i = 0; i < 5; i++) {
    const response = await fetch(`http://127.0.0.1:${shark.port}/publish`, {
      method: "POST",
      headers: { authorization: `Bearer ${secret}` },
      body: JSON.stringify({ subscription: "fan.1", data: { http: i } }),
    });
    statuses[response.status] = (statuses[response.status] ?? 0) + 1;
    await response.body?.cancel();
  }
  await burst;
  await becomes(
    async () => {
      const metrics = await shark.metrics();
      return (metrics["shark_fanout_queue"] ?? 0) === 0;
    },
    120_000,
    200,
  );
  const seconds = (performance.now() - started) / 1000;
  sampling = false;
  await sampler;
  // What left the queue may still be on its way (output queues, socket buffers): wait until
  // the clients have had nothing new for a second.
  for (let before = -1; before !== received;) {
    before = received;
    await delay(1000);
  }
  const metrics = await shark.metrics();
  const rssPeak = peakRssKiB(shark.child.pid) / 1024;
  for (const client of clients) client.close();
  publisher.close();
  await shark.terminate();
  return {
    max_fanout_queue_bytes: maxQueueBytes ?? 16 * MIB,
    subscribers,
    burst_envelopes: envelopes,
    envelope_bytes: 4000 + 40,
    max_queue_bytes_seen: maxBytes,
    max_queue_envelopes_seen: maxQueued,
    dropped_queue_full: metrics['shark_messages_dropped_total{reason="queue_full"}'] ?? 0,
    delivered: received,
    delivered_of: (envelopes + (statuses[200] ?? 0)) * subscribers,
    closed_slow_consumer: metrics['shark_connections_closed_total{reason="slow_consumer"}'] ?? 0,
    http_publish_statuses: JSON.stringify(statuses),
    drained_after_s: seconds,
    peak_rss_mib: rssPeak,
  };
}

// ---------------------------------------------------------------- the run

const ROWS = ["frames", "halfopen", "subscriptions", "keys", "fanout"] as const;

async function main(directory: string): Promise<number> {
  const { values, positionals } = harnessArgs({
    clients: { type: "string" },
    megabytes: { type: "string" },
    "connect-first": { type: "boolean" },
    "max-memory": { type: "string" },
    "per-address": { type: "string" },
    connections: { type: "string" },
    hold: { type: "string" },
    topics: { type: "string" },
    keys: { type: "string" },
    subscribers: { type: "string" },
    burst: { type: "string" },
  }, true);
  const rows = positionals.length > 0 ? positionals : [...ROWS];
  const redis = await startRedis();
  const context: Context = { directory, redis, transport: values.transport, values };
  const label = values.transport ?? "default";
  for (const row of rows) {
    log(`row ${row} (transport ${label})`);
    switch (row) {
      case "frames":
        report(`frames (${label})`, await oversizedFrames(context));
        break;
      case "halfopen":
        report(`halfopen (${label})`, await halfOpen(context));
        break;
      case "subscriptions":
        report(`subscriptions (${label})`, await subscriptions(context));
        break;
      case "keys":
        report(`keys unbounded (${label})`, await keys(context, 1_000_000_000));
        report(`keys (${label})`, await keys(context, 1000));
        break;
      case "fanout":
        report(`fanout unbounded (${label})`, await fanout(context, 2 ** 40));
        report(`fanout (${label})`, await fanout(context, undefined));
        break;
      default:
        throw new Error(`unknown row ${row}: choose from ${ROWS.join(", ")}`);
    }
  }
  await redis.stop();
  return 0;
}

if (import.meta.main) runHarness(main);
