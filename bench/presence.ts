/**
 * `deno task bench presence`: what presence (SPEC section 12) costs, on two
 * Shark processes sharing one Redis (both pinned to CPU 0; Redis and this
 * load generator on CPU 1), each figure against the same service without
 * presence measured in the same run, the two variants interleaved:
 *
 * - **join storm**: `--clients` clients (half on each node) subscribe to one
 *   topic at once; once every subscribe is answered a sentinel message is
 *   published, and the storm is over when every client has it (joins and
 *   messages of a topic arrive in one order, so every join published before
 *   it has arrived too). Shark and Redis CPU per subscribe, and the joins
 *   delivered.
 * - **presence reads** of that topic (as many members as clients): replies/s
 *   and bytes per reply, over `--reads` reads with 4 in flight.
 * - **fan-out**: bursts of `--publishes` messages through Redis to every
 *   member: delivered/s, presence against plain.
 *
 * ```sh
 * deno task bench presence                                  # 5,000 clients, 2 rounds
 * deno run -A bench/presence.ts --clients 1000 --rounds 1   # quicker
 * ```
 *
 * @module
 */
import { type BenchClient, connectClient, epochNow } from "./_raw_ws.ts";
import {
  becomes,
  delay,
  harnessArgs,
  log,
  report,
  runHarness,
  SharkProcess,
  startRedis,
} from "./_harness.ts";
import { cpuMs } from "./_proc.ts";
import { encodeCommand, RespConnection } from "./_resp.ts";

const TOPIC = "room.lobby";
const LOCAL_ADDRESSES = Array.from({ length: 8 }, (_, index) => `127.0.0.${index + 1}`);
/** No storm, read phase or burst waits longer than this. */
const PHASE_TIMEOUT_MS = 180_000;
const PAD = "lorem ipsum dolor sit amet, consectetur adipiscing";

type Variant = "plain" | "presence";

/** Counts what every client of a run receives. */
class Counter {
  messages = 0;
  joins = 0;
  leaves = 0;
  lastMessage = 0;
  message(_sentAt: number, now: number): void {
    this.messages++;
    this.lastMessage = now;
  }
  presence(event: "join" | "leave"): void {
    if (event === "join") this.joins++;
    else this.leaves++;
  }
}

function sharkConfig(redisPort: number, variant: Variant) {
  return {
    pubsub: { adapter: "redis", redis: { url: `redis://127.0.0.1:${redisPort}/0` } },
    services: {
      room: {
        require_authentication: false,
        extra_fields: ["name"],
        ...(variant === "presence"
          ? { presence: { fields: ["name"], join_leave: true, ttl: 60 } }
          : {}),
      },
    },
    // Per-connection info lines would measure the logger.
    log: { level: "warning", format: "json" },
  };
}

/** CPU milliseconds of the Shark processes and of Redis now. */
async function cpuNow(sharks: readonly SharkProcess[], redisPid: number) {
  let shark = 0;
  for (const node of sharks) shark += await cpuMs(node.child.pid);
  return { shark, redis: await cpuMs(redisPid) };
}

async function expectOk(client: BenchClient): Promise<string> {
  const reply = await client.reply(30_000);
  if (!reply.includes('"status":"ok"')) throw new Error(`not ok: ${reply.slice(0, 200)}`);
  return reply;
}

const round1 = (value: number) => Math.round(value * 10) / 10;
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)];
};

interface RunOptions {
  readonly clients: number;
  readonly reads: number;
  readonly publishes: number;
  readonly concurrency: number;
}

/** One variant: two nodes started, the storm, the reads, the bursts, everything stopped. */
async function runVariant(
  variant: Variant,
  options: RunOptions,
  directory: string,
  redis: { port: number; pid: number; publisher: RespConnection },
): Promise<Record<string, number>> {
  const config = sharkConfig(redis.port, variant);
  const sharks: SharkProcess[] = [];
  for (const node of ["a", "b"]) {
    const path = `${directory}/${variant}-${node}`;
    await Deno.mkdir(path, { recursive: true });
    sharks.push(await SharkProcess.start(config, path));
  }
  const counter = new Counter();
  const clients: BenchClient[] = [];
  try {
    // The storm.
    const before = await cpuNow(sharks, redis.pid);
    const started = epochNow();
    let next = 0;
    const worker = async () => {
      while (next < options.clients) {
        const index = next++;
        const client = await connectClient("raw", {
          port: sharks[index % 2].port,
          localAddress: LOCAL_ADDRESSES[index % LOCAL_ADDRESSES.length],
          sink: counter,
          timeoutMs: 30_000,
        });
        clients.push(client);
        client.send(JSON.stringify({ event: "subscribe", subscription: TOPIC, name: `u${index}` }));
        await expectOk(client);
      }
    };
    await Promise.all(Array.from({ length: options.concurrency }, worker));
    const subscribedAt = epochNow();
    await redis.publisher.command(
      "PUBLISH",
      TOPIC,
      JSON.stringify({ subscription: TOPIC, data: { sentinel: true } }),
    );
    const complete = await becomes(() => counter.messages >= options.clients, PHASE_TIMEOUT_MS, 5);
    if (!complete) throw new Error(`storm: ${counter.messages} of ${options.clients} sentinels`);
    const storm = epochNow() - started;
    const after = await cpuNow(sharks, redis.pid);
    const figures: Record<string, number> = {
      storm_s: round1(storm / 100) / 10,
      subscribed_s: round1((subscribedAt - started) / 100) / 10,
      joins_delivered: counter.joins,
      shark_cpu_us_per_subscribe: round1((after.shark - before.shark) * 1000 / options.clients),
      redis_cpu_us_per_subscribe: round1((after.redis - before.redis) * 1000 / options.clients),
    };
    log(`${variant} storm: ${JSON.stringify(figures)}`);

    if (variant === "presence") {
      const reader = clients[0];
      const readCpu = await cpuNow(sharks, redis.pid);
      const readStart = epochNow();
      let bytes = 0;
      let members = 0;
      const request = JSON.stringify({ event: "presence", subscription: TOPIC });
      // Four in flight: the replies of one connection come back in order.
      for (let sent = 0; sent < options.reads; sent += 4) {
        const batch = Math.min(4, options.reads - sent);
        for (let index = 0; index < batch; index++) reader.send(request);
        for (let index = 0; index < batch; index++) {
          const reply = await expectOk(reader);
          bytes = new TextEncoder().encode(reply).byteLength;
          members = JSON.parse(reply).clients;
        }
      }
      const readMs = epochNow() - readStart;
      const readAfter = await cpuNow(sharks, redis.pid);
      Object.assign(figures, {
        presence_members: members,
        presence_reads_per_s: round1(options.reads / (readMs / 1000)),
        presence_reply_bytes: bytes,
        presence_shark_cpu_us_per_read: round1(
          (readAfter.shark - readCpu.shark) * 1000 / options.reads,
        ),
        presence_redis_cpu_us_per_read: round1(
          (readAfter.redis - readCpu.redis) * 1000 / options.reads,
        ),
      });
    }

    // The fan-out: three bursts, the median.
    const rates: number[] = [];
    for (let round = 0; round < 3; round++) {
      await delay(300);
      const target = counter.messages + options.clients * options.publishes;
      const sentAt = epochNow();
      const commands = Array.from({ length: options.publishes }, (_, index) =>
        encodeCommand([
          "PUBLISH",
          TOPIC,
          JSON.stringify({ subscription: TOPIC, data: { i: index, text: PAD } }),
        ])).join("");
      await redis.publisher.send(commands, options.publishes);
      if (!await becomes(() => counter.messages >= target, PHASE_TIMEOUT_MS, 5)) {
        throw new Error(`fan-out: ${target - counter.messages} deliveries missing`);
      }
      rates.push((options.clients * options.publishes) / ((counter.lastMessage - sentAt) / 1000));
    }
    figures.fanout_delivered_per_s = Math.round(median(rates));
    log(`${variant}: ${JSON.stringify(figures)}`);
    return figures;
  } finally {
    for (const client of clients) client.close();
    await Promise.all(sharks.map((shark) => shark.terminate(10_000)));
  }
}

await runHarness(async (directory) => {
  const { values } = harnessArgs({
    clients: { type: "string", default: "5000" },
    reads: { type: "string", default: "200" },
    publishes: { type: "string", default: "100" },
    concurrency: { type: "string", default: "500" },
    rounds: { type: "string", default: "2" },
  });
  const options: RunOptions = {
    clients: Number(values.clients),
    reads: Number(values.reads),
    publishes: Number(values.publishes),
    concurrency: Number(values.concurrency),
  };
  const server = await startRedis();
  const publisher = await RespConnection.connect(server.port);
  const redis = { port: server.port, pid: server.pid!, publisher };
  const runs: Record<Variant, Record<string, number>[]> = { plain: [], presence: [] };
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const variant of ["plain", "presence"] as const) {
      runs[variant].push(await runVariant(variant, options, directory, redis));
    }
  }
  publisher.close();
  const medians = (variant: Variant) => {
    const keys = Object.keys(runs[variant][0]);
    return Object.fromEntries(
      keys.map((key) => [key, median(runs[variant].map((run) => run[key]))]),
    );
  };
  const plain = medians("plain");
  const presence = medians("presence");
  report(
    `presence: ${options.clients} clients on two Shark nodes, one Redis (medians of ${values.rounds} interleaved rounds)`,
    {
      ...Object.fromEntries(Object.entries(plain).map(([key, value]) => [`plain_${key}`, value])),
      ...Object.fromEntries(
        Object.entries(presence).map(([key, value]) => [`presence_${key}`, value]),
      ),
      storm_time_ratio: round1(presence.storm_s / plain.storm_s * 100) / 100,
      shark_cpu_per_subscribe_ratio:
        round1(presence.shark_cpu_us_per_subscribe / plain.shark_cpu_us_per_subscribe * 100) / 100,
      presence_shark_cpu_us_per_join: round1(
        presence.shark_cpu_us_per_subscribe - plain.shark_cpu_us_per_subscribe,
      ),
      presence_redis_cpu_us_per_join: round1(
        presence.redis_cpu_us_per_subscribe - plain.redis_cpu_us_per_subscribe,
      ),
      fanout_ratio: round1(presence.fanout_delivered_per_s / plain.fanout_delivered_per_s * 100) /
        100,
    },
  );
  return 0;
});
