/**
 * `deno task bench cluster`: Shark on a local Redis Cluster (SPEC section
 * 14; 3 primaries + 3 replicas pinned to the helper CPU, one Shark process
 * on CPU 0), sharded pub/sub against classic:
 *
 * - **spread**: `--clients` clients, each subscribed to one of `--topics`
 *   topics whose slots lie on 1, 2 or 3 shards; `--publishes` envelopes
 *   spread over the topics, each sent (pipelined) to the primary serving its
 *   slot, `SPUBLISH` when sharded, `PUBLISH` when classic. Delivered/s, and
 *   the CPU of every Redis node together per published message: classic
 *   pub/sub copies every message to every node of the cluster, sharded to
 *   the shard of its slot only.
 * - **failover**: a history topic published to through `POST /publish`
 *   every 20 ms while the primary of its slot is killed (SIGKILL): the time
 *   from the kill to the first delivery of an envelope published after it.
 *
 * ```sh
 * deno task bench cluster                                   # 300 clients, 20,000 publishes
 * deno run -A bench/cluster.ts --clients 100 --publishes 5000
 * ```
 *
 * @module
 */
import { type BenchClient, connectClient, epochNow } from "./_raw_ws.ts";
import {
  becomes,
  delay,
  harnessArgs,
  HELPER_CPUS,
  log,
  report,
  runHarness,
  SharkProcess,
} from "./_harness.ts";
import { Child, cpuMs } from "./_proc.ts";
import { encodeCommand, RespConnection } from "./_resp.ts";
import { RedisCluster } from "../tests/helpers/redis_cluster.ts";
import { keySlot } from "../adapters/redis_keys.ts";

const PREFIX = "shark:";
const SECRET = "publish-secret-for-the-bench";
const PHASE_TIMEOUT_MS = 120_000;
const LOCAL_ADDRESSES = Array.from({ length: 8 }, (_, index) => `127.0.0.${index + 1}`);
const PAD = "lorem ipsum dolor sit amet, consectetur adipiscing";

type Mode = "classic" | "sharded";

function sharkConfig(seeds: string[], mode: Mode) {
  return {
    publish_api: { secret: SECRET },
    pubsub: {
      adapter: "redis",
      channel_prefix: PREFIX,
      redis: { cluster: seeds, sharded: mode === "sharded", ping_interval: 0.5, ping_timeout: 1 },
    },
    services: {
      books: { require_authentication: false },
      feed: { require_authentication: false, history: { size: 1000, ttl: 300 } },
    },
    log: { level: "warning", format: "json" },
  };
}

/** `count` topics whose slots lie on the first `shards` primaries (by port), round robin. */
async function topicsOn(cluster: RedisCluster, shards: number, count: number) {
  const primaries = (await cluster.topology()).filter((node) => node.primary && !node.failed)
    .sort((a, b) => a.port - b.port).slice(0, shards);
  const topics: { topic: string; port: number }[] = [];
  for (let n = 0; topics.length < count; n++) {
    const topic = `books.t${n}`;
    const slot = keySlot(PREFIX + topic);
    const owner = primaries[topics.length % shards];
    if (owner.slots.some(([from, to]) => from <= slot && slot <= to)) {
      topics.push({ topic, port: owner.port });
    }
  }
  return topics;
}

const round1 = (value: number) => Math.round(value * 10) / 10;

interface SpreadOptions {
  readonly clients: number;
  readonly topics: number;
  readonly publishes: number;
}

async function spread(
  cluster: RedisCluster,
  mode: Mode,
  shards: number,
  options: SpreadOptions,
  directory: string,
): Promise<Record<string, number>> {
  const path = `${directory}/${mode}-${shards}`;
  await Deno.mkdir(path, { recursive: true });
  const shark = await SharkProcess.start(sharkConfig(cluster.urls().slice(0, 2), mode), path);
  const topics = await topicsOn(cluster, shards, options.topics);
  const counter = { messages: 0, last: 0 };
  const sink = {
    message: (_sentAt: number, now: number) => {
      counter.messages++;
      counter.last = now;
    },
  };
  const clients: BenchClient[] = [];
  const publishers = new Map<number, RespConnection>();
  try {
    for (let index = 0; index < options.clients; index++) {
      const client = await connectClient("raw", {
        port: shark.port,
        localAddress: LOCAL_ADDRESSES[index % LOCAL_ADDRESSES.length],
        sink,
        timeoutMs: 30_000,
      });
      clients.push(client);
      const { topic } = topics[index % topics.length];
      client.send(JSON.stringify({ event: "subscribe", subscription: topic }));
      const reply = await client.reply(30_000);
      if (!reply.includes('"status":"ok"')) throw new Error(`subscribe: ${reply.slice(0, 200)}`);
    }
    for (const { port } of topics) {
      if (!publishers.has(port)) publishers.set(port, await RespConnection.connect(port));
    }
    const perTopic = new Map<string, number>();
    for (let index = 0; index < options.clients; index++) {
      const { topic } = topics[index % topics.length];
      perTopic.set(topic, (perTopic.get(topic) ?? 0) + 1);
    }
    const command = mode === "sharded" ? "SPUBLISH" : "PUBLISH";
    const batches = new Map<number, string[]>();
    let expected = 0;
    for (let index = 0; index < options.publishes; index++) {
      const { topic, port } = topics[index % topics.length];
      expected += perTopic.get(topic) ?? 0;
      const payload = JSON.stringify({ subscription: topic, data: { i: index, text: PAD } });
      const batch = batches.get(port) ?? [];
      batch.push(encodeCommand([command, PREFIX + topic, payload]));
      batches.set(port, batch);
    }
    await delay(300);
    const pids = cluster.nodes.flatMap((node) => node.pid ?? []);
    const cpuBefore = (await Promise.all(pids.map(cpuMs))).reduce((a, b) => a + b, 0);
    const sentAt = epochNow();
    await Promise.all(
      [...batches].map(([port, batch]) => publishers.get(port)!.send(batch.join(""), batch.length)),
    );
    if (!await becomes(() => counter.messages >= expected, PHASE_TIMEOUT_MS, 5)) {
      throw new Error(`${mode} ${shards}: ${expected - counter.messages} deliveries missing`);
    }
    await delay(200);
    const cpuAfter = (await Promise.all(pids.map(cpuMs))).reduce((a, b) => a + b, 0);
    const figures = {
      delivered_per_s: Math.round(expected / ((counter.last - sentAt) / 1000)),
      redis_cpu_us_per_message: round1((cpuAfter - cpuBefore) * 1000 / options.publishes),
    };
    log(`${mode}, ${shards} shard(s): ${JSON.stringify(figures)}`);
    return figures;
  } finally {
    for (const client of clients) client.close();
    for (const publisher of publishers.values()) publisher.close();
    await shark.terminate(10_000);
  }
}

/** Kills the primary of a history topic's slot while it is published to; ms to the first delivery after. */
async function failover(cluster: RedisCluster, directory: string): Promise<number> {
  const path = `${directory}/failover`;
  await Deno.mkdir(path, { recursive: true });
  const shark = await SharkProcess.start(sharkConfig(cluster.urls().slice(0, 2), "sharded"), path);
  const topic = "feed.failover";
  let killedAt = Infinity;
  let firstAfter = Infinity;
  const sink = {
    message: (sentAt: number, now: number) => {
      if (sentAt > killedAt && firstAfter === Infinity) firstAfter = now;
    },
  };
  const client = await connectClient("raw", { port: shark.port, sink, timeoutMs: 30_000 });
  let publishing = true;
  try {
    client.send(JSON.stringify({ event: "subscribe", subscription: topic }));
    await client.reply(30_000);
    const publisher = (async () => {
      while (publishing) {
        const response = await fetch(`http://127.0.0.1:${shark.port}/publish`, {
          method: "POST",
          headers: { authorization: `Bearer ${SECRET}`, "content-type": "application/json" },
          body: JSON.stringify({ subscription: topic, data: { t: epochNow() } }),
        }).catch(() => undefined);
        await response?.body?.cancel();
        await delay(20);
      }
    })();
    await delay(500);
    const owner = await cluster.ownerOf(keySlot(PREFIX + topic));
    killedAt = epochNow();
    await cluster.kill(owner);
    const delivered = await becomes(() => firstAfter !== Infinity, 30_000, 5);
    publishing = false;
    await publisher;
    if (!delivered) throw new Error("no delivery within 30 s of the kill");
    return Math.round(firstAfter - killedAt);
  } finally {
    publishing = false;
    client.close();
    await shark.terminate(10_000);
  }
}

await runHarness(async (directory) => {
  const { values } = harnessArgs({
    clients: { type: "string", default: "300" },
    topics: { type: "string", default: "60" },
    publishes: { type: "string", default: "20000" },
  });
  const options: SpreadOptions = {
    clients: Number(values.clients),
    topics: Number(values.topics),
    publishes: Number(values.publishes),
  };
  await using cluster = await RedisCluster.start({
    args: ["--loglevel", "warning", "--client-output-buffer-limit", "pubsub 0 0 0"],
    spawn: (command) => new Child({ name: "redis", command, cpus: HELPER_CPUS }).process,
  });
  const figures: Record<string, number> = {};
  for (const shards of [1, 2, 3]) {
    for (const mode of ["classic", "sharded"] as const) {
      const run = await spread(cluster, mode, shards, options, directory);
      for (const [key, value] of Object.entries(run)) figures[`${mode}_${shards}_${key}`] = value;
    }
  }
  figures.failover_kill_to_delivery_ms = await failover(cluster, directory);
  report(
    `cluster: ${options.clients} clients on ${options.topics} topics, ${options.publishes} publishes, one Shark, 3 primaries + 3 replicas`,
    figures,
  );
  return 0;
});
