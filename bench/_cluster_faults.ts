/**
 * The Redis Cluster faults of `deno task faults` (SPEC section 14), on a
 * local cluster (3 primaries + 3 replicas, `cluster-node-timeout` 1 s) and a
 * Shark process in sharded mode:
 *
 * 1. the primary of a watched topic frozen (SIGSTOP) until its replica is
 *    promoted, then thawed;
 * 2. the primary of a watched topic killed (SIGKILL);
 * 3. a manual failover (`CLUSTER FAILOVER` on the replica): not a lost
 *    shard, so nothing may be closed, and delivery goes on.
 *
 * A lost shard must be noticed (the watching client closed with 1012,
 * `/healthz` 503) within `ping_interval + ping_timeout`; recovered means
 * `/healthz` 200 and a message published through `POST /publish` to a topic
 * of that shard reaching a fresh subscriber.
 *
 * @module
 */
import { RedisCluster } from "../tests/helpers/redis_cluster.ts";
import { keySlot } from "../adapters/redis_keys.ts";
import { becomes, delay, HELPER_CPUS, SharkProcess, WsClient } from "./_harness.ts";
import { Child } from "./_proc.ts";
import type { Outcome } from "./faults.ts";

const PREFIX = "shark:";
const SECRET = "publish-secret-for-the-faults";

interface ClusterWorld {
  readonly cluster: RedisCluster;
  readonly shark: SharkProcess;
  readonly bound: number;
}

async function subscriber(world: ClusterWorld, topic: string): Promise<WsClient | undefined> {
  const client = await WsClient.connect(world.shark.wsUrl);
  const reply = await client.request({ event: "subscribe", subscription: topic });
  if (reply.status === "ok") return client;
  client.close();
}

/** Whether a message published through Shark now reaches a fresh subscriber of `topic`. */
async function delivers(world: ClusterWorld, topic: string): Promise<boolean> {
  const client = await subscriber(world, topic).catch(() => undefined);
  if (!client) return false;
  const arrived = new Promise<boolean>((resolve) => client.onMessage = () => resolve(true));
  const response = await fetch(`http://127.0.0.1:${world.shark.port}/publish`, {
    method: "POST",
    headers: { authorization: `Bearer ${SECRET}`, "content-type": "application/json" },
    body: JSON.stringify({ subscription: topic, data: { probe: true } }),
  });
  await response.body?.cancel();
  const took = response.ok && await Promise.race([arrived, delay(1000).then(() => false)]);
  client.close();
  return took;
}

async function shardFault(
  world: ClusterWorld,
  fault: string,
  topic: string,
  inject: () => Promise<void>,
  heal: () => Promise<void>,
): Promise<Outcome> {
  const watcher = (await subscriber(world, topic))!;
  const started = performance.now();
  await inject();
  const closed = await Promise.race([watcher.closed, delay(world.bound * 1000 + 10_000)]);
  const detection = closed?.code === 1012 ? (performance.now() - started) / 1000 : null;
  const unhealthy = !(await world.shark.healthy());
  const promoted = performance.now();
  const back = await becomes(
    async () => await world.shark.healthy() && await delivers(world, topic),
    30_000,
  );
  await heal();
  return {
    fault,
    detected: detection !== null && unhealthy,
    detection_s: detection,
    bound_s: world.bound,
    recovered: back,
    recovery_s: back ? (performance.now() - promoted) / 1000 : null,
    note: `healthz 503 while down: ${unhealthy}; recovery timed from detection (the promotion)`,
  };
}

async function manualFailover(world: ClusterWorld, topic: string): Promise<Outcome> {
  const watcher = (await subscriber(world, topic))!;
  const owner = await world.cluster.ownerOf(keySlot(PREFIX + topic));
  const started = performance.now();
  await world.cluster.failover(await world.cluster.replicaOf(owner));
  const back = await becomes(() => delivers(world, topic), 10_000);
  const recovery = (performance.now() - started) / 1000;
  const closed = await Promise.race([watcher.closed, delay(200).then(() => undefined)]);
  watcher.close();
  return {
    fault: "cluster_manual_failover_under_ping_timeout",
    detected: closed !== undefined,
    detection_s: null,
    bound_s: world.bound,
    recovered: back,
    recovery_s: back ? recovery : null,
    note: "a manual failover loses no shard: no session closed, delivery goes on",
  };
}

/** Runs the cluster faults; every process it started is stopped before it returns. */
export async function clusterFaults(
  directory: string,
  pingInterval: number,
  pingTimeout: number,
): Promise<Outcome[]> {
  await using cluster = await RedisCluster.start({
    args: ["--loglevel", "warning"],
    spawn: (command) => new Child({ name: "redis", command, cpus: HELPER_CPUS }).process,
  });
  const path = `${directory}/cluster`;
  await Deno.mkdir(path, { recursive: true });
  const shark = await SharkProcess.start({
    publish_api: { secret: SECRET },
    pubsub: {
      adapter: "redis",
      channel_prefix: PREFIX,
      redis: {
        cluster: cluster.urls().slice(0, 2),
        sharded: true,
        ping_interval: pingInterval,
        ping_timeout: pingTimeout,
      },
    },
    services: { watch: { require_authentication: false } },
    log: { level: "fatal" },
  }, path);
  const world = { cluster, shark, bound: pingInterval + pingTimeout };
  try {
    const outcomes: Outcome[] = [];
    outcomes.push(await manualFailover(world, "watch.failover"));
    await cluster.waitHealthy();
    let frozen = cluster.nodes[0];
    outcomes.push(
      await shardFault(world, "cluster_primary_frozen_sigstop", "watch.frozen", async () => {
        frozen = await cluster.ownerOf(keySlot(`${PREFIX}watch.frozen`));
        cluster.freeze(frozen);
      }, async () => {
        cluster.thaw(frozen);
        await cluster.waitHealthy();
      }),
    );
    outcomes.push(
      await shardFault(world, "cluster_primary_killed_sigkill", "watch.killed", async () => {
        await cluster.kill(await cluster.ownerOf(keySlot(`${PREFIX}watch.killed`)));
      }, () => Promise.resolve()),
    );
    return outcomes;
  } finally {
    await shark.terminate(10_000);
  }
}
