/**
 * `deno task fuzz -- [--seconds 60] [--seed N] [--clients 20] [--rate 4000]
 * [--transport shark|deno]`:
 * Shark (`main.ts`, Redis adapter) under random and mutated input from every
 * side at once, while a well-behaved bystander client is watched.
 *
 * - Clients: `--clients` raw TCP connections, reconnecting, each sending a
 *   seeded stream of WebSocket frames: valid events with random values,
 *   mutated frames (bit flips, truncation, bad opcodes, reserved bits,
 *   unmasked, fragments never finished, oversized control frames), random
 *   bytes, invalid UTF-8, deep JSON, frames over `max_message_bytes`, and
 *   broken upgrade requests. `--rate` inputs per second in all.
 * - Services: every callback (ticket validation too) goes to a service whose
 *   every answer is drawn: good and bad JSON, hangs, 10 MB bodies, wrong
 *   content types, invalid JSON, connections closed without an answer, slow
 *   drips, 429 with absurd reset headers, 5xx.
 * - Publishers: garbage through Redis `PUBLISH` and `POST /publish`: random
 *   bytes, truncated and deep JSON, envelopes of several MB, absurd options,
 *   wrong secrets and bodies.
 * - The bystander: one client subscribed to its own topic, sent 50
 *   sequence-numbered messages per second through Redis and pinging twice a
 *   second; every message it misses is reported, with its latency.
 *
 * A crash (Shark exiting during the run) ends the run. The same `--seed`
 * draws the same inputs for every client, service answer and publish (their
 * interleaving is the machine's). Prints what was tried, crashes, the
 * bystander's losses and latency, and Shark's exit after SIGTERM.
 *
 * @module
 */
import type { RedisServer } from "../tests/helpers/redis_server.ts";
import { clientFrame as frame, concat, upgradeRequest } from "../tests/helpers/ws_frame.ts";
import { encodeCommand, RespConnection } from "./_resp.ts";
import { type Behaviour, FaultyService, jsonReply, type Reply } from "./_faulty_service.ts";
import {
  delay,
  type Figures,
  harnessArgs,
  log,
  quantile,
  Random,
  report,
  runHarness,
  SharkProcess,
  startRedis,
  WsClient,
} from "./_harness.ts";

const encoder = new TextEncoder();

const PUBLISH_SECRET = "fuzz-publish-secret";
const MAX_MESSAGE_BYTES = 65536;
/** Topics the fuzz clients and the garbage publishers use. */
const FUZZ_TOPICS = ["fuzz.1", "fuzz.2", "fuzz.3", "hist.1", "open.1", "bystander.other"];
const BYSTANDER_TOPIC = "bystander.main";
/** Bystander messages per second. */
const BYSTANDER_RATE = 50;

/** What was tried, by kind. */
type Counts = Record<string, number>;

function count(counts: Counts, kind: string, by = 1): void {
  counts[kind] = (counts[kind] ?? 0) + by;
}

// ---------------------------------------------------------------- random values

const STRINGS = [
  "",
  " ",
  "ticket",
  "é",
  "\u0000",
  "\ud800",
  "🦈",
  "null",
  "{}",
  "__proto__",
  "constructor",
  "fuzz.1",
  ".",
  "a.",
  ".b",
  "x".repeat(300),
];

function randomString(rng: Random): string {
  if (rng.chance(0.5)) return rng.pick(STRINGS);
  let text = "";
  for (let i = rng.int(40); i > 0; i--) text += String.fromCharCode(rng.int(0x3000));
  return text;
}

const NUMBERS = [0, -0, 1, -1, 0.5, 1e308, -1e308, 2 ** 53 + 1, 1e-300, 3600, 3601, 1e9];

/** A random JSON value, at most `depth` levels deep. */
function randomJson(rng: Random, depth = 3): unknown {
  const r = rng.int(depth > 0 ? 8 : 5);
  switch (r) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return rng.pick(NUMBERS);
    case 3:
    case 4:
      return randomString(rng);
    case 5:
      return Array.from({ length: rng.int(5) }, () => randomJson(rng, depth - 1));
    default: {
      const object: Record<string, unknown> = {};
      for (let i = rng.int(5); i > 0; i--) object[randomString(rng)] = randomJson(rng, depth - 1);
      return object;
    }
  }
}

function subscriptionName(rng: Random): unknown {
  if (rng.chance(0.8)) return rng.pick([...FUZZ_TOPICS, BYSTANDER_TOPIC, "nosuch.t", "fuzz."]);
  return randomJson(rng, 1);
}

/** A client event: mostly well-formed, with random values where values go. */
function randomEvent(rng: Random): unknown {
  const event = rng.pick(["auth", "subscribe", "subscribe", "message", "unsubscribe", "ping"]);
  const request: Record<string, unknown> = { event };
  switch (event) {
    case "auth":
      request.method = rng.pick(["ticket", "ticket", "jwt", randomString(rng)]);
      request.ticket = rng.chance(0.7) ? `t${rng.int(1000)}` : randomJson(rng, 2);
      break;
    case "subscribe":
      request.subscription = subscriptionName(rng);
      if (rng.chance(0.3)) request.x = randomJson(rng, 2);
      if (rng.chance(0.2)) {
        request.recover = rng.chance(0.5)
          ? { offset: rng.pick(NUMBERS), epoch: randomString(rng) }
          : randomJson(rng, 2);
      }
      break;
    case "message":
    case "unsubscribe":
      request.subscription = subscriptionName(rng);
      request.data = randomJson(rng, 3);
      break;
    case "ping":
      request.data = randomJson(rng, 1);
  }
  if (rng.chance(0.05)) request.event = randomJson(rng, 1);
  if (rng.chance(0.05)) delete request.event;
  return rng.chance(0.03) ? randomJson(rng, 2) : request;
}

// ---------------------------------------------------------------- frames

/** The bytes of one fuzz input on an upgraded connection, and its kind. */
function randomInput(rng: Random): [string, Uint8Array] {
  const json = () => encoder.encode(JSON.stringify(randomEvent(rng)) ?? "null");
  const r = rng.next();
  if (r < 0.5) return ["text", frame(1, json())];
  if (r < 0.58) return ["binary", frame(2, json())];
  if (r < 0.68) {
    const bytes = frame(1, json());
    for (let flips = 1 + rng.int(8); flips > 0; flips--) {
      bytes[rng.int(bytes.length)] ^= 1 << rng.int(8);
    }
    return ["bit_flipped", bytes];
  }
  if (r < 0.72) {
    const bytes = frame(1, json());
    return ["truncated", bytes.subarray(0, rng.int(bytes.length))];
  }
  if (r < 0.76) return ["random_bytes", rng.bytes(1 + rng.int(200))];
  if (r < 0.8) {
    const opcode = rng.pick([0, 3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf]);
    return [
      "bad_opcode_or_bits",
      frame(opcode, json(), { rsv: rng.int(8), masked: rng.chance(0.7) }),
    ];
  }
  if (r < 0.83) return ["unmasked", frame(1, json(), { masked: false })];
  if (r < 0.87) {
    const parts = [frame(1, json(), { fin: false })];
    for (let i = rng.int(4); i > 0; i--) {
      parts.push(
        rng.chance(0.3) ? frame(9, rng.bytes(rng.int(20))) : frame(0, json(), { fin: false }),
      );
    }
    if (rng.chance(0.6)) parts.push(frame(0, json()));
    return ["fragmented", concat(...parts)];
  }
  if (r < 0.9) {
    const opcode = rng.pick([8, 9, 10]);
    const size = rng.chance(0.2) ? 126 + rng.int(200) : rng.int(126);
    return ["control", frame(opcode, rng.bytes(size))];
  }
  if (r < 0.92) {
    return ["oversized", frame(1, new Uint8Array(MAX_MESSAGE_BYTES + 1 + rng.int(8000)))];
  }
  if (r < 0.94) return ["invalid_utf8", frame(1, new Uint8Array([0x7b, 0xc3, 0x28, 0xff, 0x7d]))];
  if (r < 0.96) {
    const depth = 100 + rng.int(20_000);
    return ["deep_json", frame(1, encoder.encode(`{"event":"ping","data":${"[".repeat(depth)}`))];
  }
  if (r < 0.98) {
    const data = "y".repeat(MAX_MESSAGE_BYTES - 100);
    return ["near_limit", frame(1, encoder.encode(JSON.stringify({ event: "ping", data })))];
  }
  return [
    "close_frame",
    frame(8, concat(new Uint8Array([rng.int(256), rng.int(256)]), rng.bytes(rng.int(30)))),
  ];
}

const UPGRADE_KEY = btoa("fuzz-fuzz-fuzz!!");

/** A request that is not a complete, valid upgrade. */
function brokenHandshake(rng: Random, port: number): Uint8Array {
  const good = upgradeRequest(port, UPGRADE_KEY);
  switch (rng.int(5)) {
    case 0:
      return good.subarray(0, rng.int(good.length));
    case 1:
      return rng.bytes(1 + rng.int(500));
    case 2:
      return encoder.encode(
        `GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Version: ${rng.int(100)}\r\nX-Junk: ${
            "j".repeat(rng.int(20_000))
          }\r\n\r\n`,
      );
    case 3:
      return encoder.encode(
        `POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n{`,
      );
    default: {
      const bytes = good.slice();
      for (let flips = 1 + rng.int(4); flips > 0; flips--) bytes[rng.int(bytes.length)] ^= 0xff;
      return bytes;
    }
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let written = 0; written < bytes.length;) {
    written += await conn.write(bytes.subarray(written));
  }
}

/** Reads everything until the end of the stream; resolves with the first chunk's text. */
function drain(conn: Deno.Conn): { head: Promise<string>; ended: Promise<void> } {
  const { promise: head, resolve } = Promise.withResolvers<string>();
  const ended = (async () => {
    const chunk = new Uint8Array(65536);
    try {
      for (;;) {
        const n = await conn.read(chunk);
        if (n === null) break;
        resolve(new TextDecoder().decode(chunk.subarray(0, Math.min(n, 64))));
      }
    } catch {
      // Reset by the server.
    }
    resolve("");
  })();
  return { head, ended };
}

/** One fuzz client: connections one after another until `until`, `perSecond` inputs a second. */
async function fuzzClient(
  rng: Random,
  port: number,
  until: number,
  perSecond: number,
  counts: Counts,
): Promise<void> {
  const pause = 1000 / perSecond;
  let next = performance.now();
  while (performance.now() < until) {
    let conn: Deno.Conn;
    try {
      conn = await Deno.connect({ hostname: "127.0.0.1", port });
    } catch {
      count(counts, "connect_refused");
      await delay(50);
      continue;
    }
    const reader = drain(conn);
    try {
      if (rng.chance(0.04)) {
        count(counts, "broken_handshake");
        await writeAll(conn, brokenHandshake(rng, port));
        await Promise.race([reader.ended, delay(200)]);
        continue;
      }
      await writeAll(conn, upgradeRequest(port, UPGRADE_KEY));
      const status = await Promise.race([reader.head, delay(5000).then(() => "")]);
      if (!status.startsWith("HTTP/1.1 101")) {
        count(counts, "upgrade_refused");
        continue;
      }
      count(counts, "connections");
      let open = true;
      reader.ended.then(() => open = false);
      for (let left = 1 + rng.int(300); left > 0 && open && performance.now() < until; left--) {
        const [kind, bytes] = randomInput(rng);
        count(counts, kind);
        count(counts, "inputs");
        await writeAll(conn, bytes);
        next += pause;
        const wait = next - performance.now();
        if (wait > 0) await delay(wait);
        else next = performance.now();
      }
    } catch {
      count(counts, "reset_by_server");
    } finally {
      try {
        conn.close();
      } catch {
        // Closed already.
      }
      await reader.ended;
    }
  }
}

// ---------------------------------------------------------------- services

const RESET_HEADERS = ["-1", "1e308", "NaN", "abc", "0.01", "3601", "", "0x10", "1".repeat(400)];

/** The answer of a service that misbehaves in every way a service can. */
function garbageService(rng: Random, counts: Counts): Behaviour {
  return (): Reply => {
    const r = rng.next();
    const answer = (kind: string, reply: Reply) => {
      count(counts, `service_${kind}`);
      count(counts, "service_replies");
      return reply;
    };
    if (r < 0.3) {
      return answer(
        "ok",
        jsonReply({
          status: "ok",
          user_id: randomJson(rng, 1),
          data: randomJson(rng, 3),
          options: { order: rng.pick(NUMBERS), order_key: randomJson(rng, 1) },
        }),
      );
    }
    if (r < 0.4) return answer("error", jsonReply({ status: "error", error: randomJson(rng, 2) }));
    if (r < 0.43) return answer("hang", { kind: "hang" });
    if (r < 0.47) return answer("10mb_body", { kind: "huge", bytes: 10 * 1024 * 1024 });
    if (r < 0.55) {
      const body = rng.chance(0.5) ? "<html>nope</html>" : '{"status":"ok"}';
      const bytes = encoder.encode(
        `HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
      );
      return answer("wrong_content_type", { kind: "raw", bytes });
    }
    if (r < 0.65) {
      const text = rng.pick(['{"status": ok', "[1,2", "", "nul", '{"status":"ok"}}', "\u0000"]);
      const bytes = encoder.encode(
        `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${
          encoder.encode(text).length
        }\r\n\r\n${text}`,
      );
      return answer("invalid_json", { kind: "raw", bytes });
    }
    if (r < 0.73) return answer("closed", { kind: "close" });
    if (r < 0.77) return answer("drip", { kind: "drip", text: '{"status":"ok"}', intervalMs: 40 });
    if (r < 0.9) {
      const value = rng.chance(0.02) ? "3600" : rng.pick(RESET_HEADERS);
      return answer("429", jsonReply({ status: "error" }, 429, { "x-rate-limit-reset": value }));
    }
    return answer("5xx", jsonReply({ status: "ok" }, rng.pick([500, 502, 503])));
  };
}

// ---------------------------------------------------------------- publishers

/** A garbage payload for `topic`; only small ones go to the bystander's topic. */
function garbagePayload(rng: Random, topic: string, small: boolean): [string, string] {
  const r = rng.int(small ? 6 : 8);
  const envelope = (extra: Record<string, unknown>) =>
    JSON.stringify({ subscription: topic, data: randomJson(rng, 2), ...extra });
  switch (r) {
    case 0:
      return ["random_bytes", String.fromCharCode(...rng.bytes(1 + rng.int(300)))];
    case 1: {
      const text = envelope({});
      return ["truncated_json", text.slice(0, rng.int(text.length))];
    }
    case 2:
      return [
        "absurd_options",
        envelope({
          options: {
            order: rng.pick([...NUMBERS, "1e400", "NaN", {}, [], true]),
            order_key: randomJson(rng, 2),
            throttle: rng.pick([1e9, -1, "0.000001", 1e-9, "x", 0]),
            throttle_key: randomJson(rng, 2),
          },
          published_at: randomJson(rng, 1),
        }),
      ];
    case 3:
      return ["wrong_subscription", envelope({ subscription: rng.pick(FUZZ_TOPICS) })];
    case 4:
      return ["not_an_object", JSON.stringify(randomJson(rng, 2)) ?? "null"];
    case 5:
      return ["deep_json", `{"subscription":"${topic}","data":${"[".repeat(1 + rng.int(100_000))}`];
    case 6:
      return ["huge", envelope({ blob: "z".repeat((1 + rng.int(4)) * 1024 * 1024) })];
    default:
      return [
        "many_keys",
        envelope({ options: { order: rng.int(1e9), order_key: `k${rng.int(1e9)}` } }),
      ];
  }
}

/**
 * A Redis connection for payloads of any bytes: RESP lengths in bytes, the
 * replies read and thrown away.
 */
class ByteRedis {
  readonly #conn: Deno.Conn;
  readonly #reading: Promise<void>;

  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
    this.#reading = drain(conn).ended;
  }

  static async connect(port: number): Promise<ByteRedis> {
    return new ByteRedis(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  /** Writes `PUBLISH channel payload`. */
  async publish(channel: string, payload: string): Promise<void> {
    const parts = [encoder.encode("PUBLISH"), encoder.encode(channel), latin1(payload)];
    const head = encoder.encode(`*${parts.length}\r\n`);
    const body = parts.flatMap((part) => [
      encoder.encode(`$${part.length}\r\n`),
      part,
      encoder.encode("\r\n"),
    ]);
    await writeAll(this.#conn, concat(head, ...body));
  }

  async close(): Promise<void> {
    this.#conn.close();
    await this.#reading;
  }
}

/** The bytes of a string whose characters are all below 256 (else UTF-8). */
function latin1(text: string): Uint8Array {
  const codes = Uint8Array.from(text, (c) => c.charCodeAt(0));
  return codes.every((code, i) => code === text.charCodeAt(i)) ? codes : encoder.encode(text);
}

/** Garbage through Redis `PUBLISH` and `POST /publish`, paced, until `until`. */
async function garbagePublisher(
  rng: Random,
  redis: ByteRedis,
  port: number,
  until: number,
  counts: Counts,
): Promise<void> {
  while (performance.now() < until) {
    const topic = rng.chance(0.2) ? BYSTANDER_TOPIC : rng.pick(FUZZ_TOPICS);
    const [kind, payload] = garbagePayload(rng, topic, topic === BYSTANDER_TOPIC);
    count(counts, `publish_${kind}`);
    count(counts, "publishes");
    try {
      if (rng.chance(0.7)) {
        await redis.publish(topic, payload);
      } else {
        const authorization = rng.chance(0.85) ? `Bearer ${PUBLISH_SECRET}` : randomString(rng);
        const body = rng.chance(0.1) ? `[${payload},${payload}]` : payload;
        const response = await fetch(`http://127.0.0.1:${port}/publish`, {
          method: "POST",
          headers: { authorization },
          body: rng.chance(0.02) ? "x".repeat(9 * 1024 * 1024) : body,
          signal: AbortSignal.timeout(10_000),
        });
        count(counts, `publish_http_${response.status}`);
        await response.body?.cancel();
      }
    } catch {
      count(counts, "publish_failed");
    }
    await delay(kind === "huge" ? 500 : 10);
  }
}

// ---------------------------------------------------------------- the bystander

interface BystanderResult {
  readonly published: number;
  readonly received: number;
  readonly lost: number;
  readonly duplicates: number;
  readonly outOfOrder: number;
  readonly latencies: number[];
  readonly pongs: number[];
  readonly closeCode: number | undefined;
}

/** The bystander: subscribed to its topic, sent paced messages through Redis, pinging. */
async function bystander(shark: SharkProcess, redisPort: number, until: number) {
  const client = await WsClient.connect(shark.wsUrl);
  const reply = await client.request({ event: "subscribe", subscription: BYSTANDER_TOPIC });
  if (reply.status !== "ok") {
    throw new Error(`bystander subscribe failed: ${JSON.stringify(reply)}`);
  }
  const seen = new Set<number>();
  const latencies: number[] = [];
  let duplicates = 0;
  let outOfOrder = 0;
  let last = -1;
  client.onMessage = (text) => {
    const data = JSON.parse(text).data as { src?: string; seq?: number; t?: number } | undefined;
    if (data?.src !== "bystander" || typeof data.seq !== "number") return;
    latencies.push(performance.timeOrigin + performance.now() - data.t!);
    if (seen.has(data.seq)) duplicates++;
    if (data.seq < last) outOfOrder++;
    last = data.seq;
    seen.add(data.seq);
  };
  const publisher = await RespConnection.connect(redisPort);
  const pongs: number[] = [];
  const run = async (): Promise<BystanderResult> => {
    let published = 0;
    const started = performance.now();
    while (performance.now() < until) {
      const data = {
        src: "bystander",
        seq: published,
        t: performance.timeOrigin + performance.now(),
      };
      const envelope = JSON.stringify({ subscription: BYSTANDER_TOPIC, data });
      publisher.send(encodeCommand(["PUBLISH", BYSTANDER_TOPIC, envelope]), 1).catch(() => {});
      published++;
      if (published % (BYSTANDER_RATE / 2) === 0 && client.closeCode === undefined) {
        const sent = performance.now();
        try {
          await client.request({ event: "ping", data: `p${published}` }, 5000);
          pongs.push(performance.now() - sent);
        } catch {
          pongs.push(Infinity);
        }
      }
      const wait = started + (published * 1000) / BYSTANDER_RATE - performance.now();
      if (wait > 0) await delay(wait);
    }
    // What is still on its way gets two seconds.
    for (let i = 0; i < 40 && seen.size < published; i++) await delay(50);
    publisher.close();
    const closeCode = client.closeCode;
    client.close();
    return {
      published,
      received: seen.size,
      lost: published - seen.size,
      duplicates,
      outOfOrder,
      latencies,
      pongs,
      closeCode,
    };
  };
  return run();
}

// ---------------------------------------------------------------- the run

function sharkConfig(redis: RedisServer, service: FaultyService) {
  const callbacks = Object.fromEntries(
    [
      "authorizer",
      "before_subscribe",
      "on_subscribe",
      "on_message",
      "before_unsubscribe",
      "on_unsubscribe",
      "on_authorization_change",
      "on_heartbeat",
    ].map((name) => [name, service.url(`/${name}`)]),
  );
  return {
    // Envelopes of several MB must not fill the fan-out queue: the bystander measures isolation.
    server: {
      max_message_bytes: MAX_MESSAGE_BYTES,
      shutdown_timeout: 5,
      max_fanout_queue_bytes: 64 * 1024 * 1024,
    },
    ws_ping: { interval: 5, timeout: 5 },
    pubsub: { adapter: "redis", redis: { url: redis.url(), ping_interval: 1, ping_timeout: 2 } },
    http: { timeout: 1, tries: 2, wait: 0.1 },
    authentication: {
      ticket: { validation_url: service.url("/ticket"), auth_fields: ["user_id", "role"] },
    },
    services: {
      fuzz: {
        require_authentication: false,
        ...callbacks,
        authorizer_fields: ["role"],
        authorization_renewal_period: 2,
        authorization_renewal_jitter: 1,
        heartbeat_period: 2,
        extra_fields: ["x"],
        filter_fields: ["x", "user_id"],
      },
      hist: { require_authentication: true, history: { size: 20, ttl: 60 } },
      open: { require_authentication: false },
      bystander: { require_authentication: false },
    },
    publish_api: { secret: PUBLISH_SECRET },
    log: { level: "fatal" },
  };
}

async function main(directory: string): Promise<number> {
  const { values } = harnessArgs({
    seconds: { type: "string", default: "60" },
    seed: { type: "string" },
    clients: { type: "string", default: "20" },
    rate: { type: "string", default: "4000" },
  });
  const seconds = Number(values.seconds);
  const seed = values.seed === undefined
    ? Math.floor(Math.random() * 2 ** 32)
    : Number(values.seed);
  const clients = Number(values.clients);
  const rate = Number(values.rate);
  log(`fuzz: seed ${seed}, ${seconds} s, ${clients} clients, ${rate} inputs/s`);
  const rng = new Random(seed);
  const counts: Counts = {};
  const redis = await startRedis();
  const service = FaultyService.start(garbageService(rng.fork(), counts));
  const shark = await SharkProcess.start(sharkConfig(redis, service), directory, values.transport);
  const rssStart = shark.rssMiB();
  const until = performance.now() + seconds * 1000;
  const publisher = await ByteRedis.connect(redis.port);
  const watched = bystander(shark, redis.port, until);
  let crash: string | undefined;
  let stopping = false;
  const crashed = shark.exited.then((exit) => {
    if (!stopping) crash = `exited during the run (code ${exit.code}, signal ${exit.signal})`;
  });
  let rssPeak = rssStart;
  const sampler = setInterval(() => rssPeak = Math.max(rssPeak, shark.rssMiB()), 500);
  const actors = [
    ...Array.from(
      { length: clients },
      () => fuzzClient(rng.fork(), shark.port, until, rate / clients, counts),
    ),
    garbagePublisher(rng.fork(), publisher, shark.port, until, counts),
  ];
  await Promise.race([Promise.all(actors), crashed]);
  clearInterval(sampler);
  const watchedResult = await Promise.race([watched, crashed.then(() => undefined)]);
  await publisher.close();
  let exit = shark.exit;
  let shutdownSeconds: number | null = null;
  let metrics: Record<string, number> = {};
  if (!crash) {
    metrics = await shark.metrics();
    stopping = true;
    const stopped = await shark.terminate(30_000);
    exit = stopped.exit;
    shutdownSeconds = stopped.seconds;
  } else {
    log(`Shark crashed; stderr:\n${shark.child.tail(40)}`);
  }
  service.down();
  await redis.stop();
  const b = watchedResult;
  const metric = (name: string) => metrics[name] ?? 0;
  const figures: Figures = {
    seed,
    seconds,
    inputs: counts.inputs ?? 0,
    connections: counts.connections ?? 0,
    broken_handshakes: counts.broken_handshake ?? 0,
    service_replies: counts.service_replies ?? 0,
    publishes: counts.publishes ?? 0,
    crashes: crash ? 1 : 0,
    crash: crash ?? null,
    internal_errors: metric('shark_connections_closed_total{reason="internal_error"}'),
    bystander_published: b?.published ?? 0,
    bystander_received: b?.received ?? 0,
    bystander_lost: b?.lost ?? -1,
    bystander_duplicates: b?.duplicates ?? 0,
    bystander_out_of_order: b?.outOfOrder ?? 0,
    bystander_closed: b?.closeCode ?? null,
    bystander_latency_p50_ms: quantile(b?.latencies ?? [], 0.5),
    bystander_latency_p99_ms: quantile(b?.latencies ?? [], 0.99),
    bystander_latency_max_ms: quantile(b?.latencies ?? [], 1),
    bystander_pong_p99_ms: quantile(b?.pongs ?? [], 0.99),
    shark_rss_start_mib: rssStart,
    shark_rss_peak_mib: rssPeak,
    shark_exit_code: exit?.code ?? null,
    shark_shutdown_seconds: shutdownSeconds,
  };
  report("fuzz", figures);
  const outcomes = Object.fromEntries(
    Object.entries(metrics).filter(([name]) =>
      /_(closed|dropped|rejected|limited)_total/.test(name)
    ),
  );
  console.log(JSON.stringify({ fuzz_inputs: counts, fuzz_outcomes: outcomes }));
  const clean = !crash && b?.lost === 0 && b.closeCode === undefined && exit?.code === 0;
  return clean ? 0 : 1;
}

if (import.meta.main) runHarness(main);
