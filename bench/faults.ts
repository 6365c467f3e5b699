/**
 * `deno task faults -- [--clients 500] [--ping-interval 0.5] [--ping-timeout 1]
 * [--transport shark|deno]`:
 * faults injected into Shark's surroundings one after another, each timed
 * from the moment it starts until Shark notices (clients closed with 1012,
 * `/healthz` 503, or `Service unavailable.` replies) and from the moment it
 * ends until Shark delivers again.
 *
 * 1. Redis frozen (SIGSTOP), then SIGCONT.
 * 2. Redis killed (SIGKILL), then restarted on the same port.
 * 3. Redis slow, under `ping_timeout` (a proxy delaying every byte 150 ms):
 *    nothing may be noticed, messages only arrive later.
 * 4. Redis slow, over `ping_timeout` (1.5 s each way), then fast again.
 * 5. A service going down while `before_subscribe` calls are in flight, then
 *    coming back.
 * 6. SIGTERM while `--clients` subscribed clients receive published
 *    messages: every client is closed with 1001, every `on_unsubscribe`
 *    arrives, and Shark exits 0.
 * 7. Redis Cluster (`_cluster_faults.ts`): a manual failover (nothing may be
 *    closed), a primary frozen, a primary killed; skipped with `--no-cluster`.
 *
 * A pub/sub fault must be noticed within `ping_interval + ping_timeout`; a
 * service fault within the `http` retry budget. Exit code 0 when every fault
 * was noticed in time and recovered from.
 *
 * @module
 */
import type { RedisServer } from "../tests/helpers/redis_server.ts";
import { encodeCommand, RespConnection } from "./_resp.ts";
import { clusterFaults } from "./_cluster_faults.ts";
import { DelayProxy, FaultyService, jsonReply, type Reply } from "./_faulty_service.ts";
import {
  becomes,
  delay,
  harnessArgs,
  log,
  quantile,
  report,
  runHarness,
  SharkProcess,
  signalRedis,
  startRedis,
  WsClient,
} from "./_harness.ts";

const HTTP = { timeout: 1, tries: 2, wait: 0.1 };
/** The longest a callback may take before `Service unavailable.`: every try times out. */
const HTTP_BUDGET_S = HTTP.timeout * HTTP.tries + HTTP.wait * (HTTP.tries - 1);

/** One fault's outcome. */
export interface Outcome {
  readonly fault: string;
  /** Whether Shark noticed (for a fault it must not notice: whether it did not). */
  readonly detected: boolean;
  readonly detection_s: number | null;
  readonly bound_s: number;
  readonly recovered: boolean;
  readonly recovery_s: number | null;
  readonly note: string;
}

interface World {
  readonly redis: RedisServer;
  readonly proxy: DelayProxy;
  readonly service: FaultyService;
  readonly shark: SharkProcess;
  /** Publishes straight to Redis (not through the proxy); replaced when Redis restarts. */
  publisher: RespConnection;
  readonly pubsubBound: number;
}

const ok = (): Reply => jsonReply({ status: "ok" });

/** Publishes `data` to `topic` through Redis. */
function publish(world: World, topic: string, data: unknown): void {
  const envelope = JSON.stringify({ subscription: topic, data });
  world.publisher.send(encodeCommand(["PUBLISH", topic, envelope]), 1).catch(() => {});
}

/** A client subscribed to `topic`, and a promise of its first message. */
async function subscriber(world: World, topic: string) {
  const client = await WsClient.connect(world.shark.wsUrl);
  const reply = await client.request({ event: "subscribe", subscription: topic });
  if (reply.status !== "ok") throw new Error(`subscribe ${topic}: ${JSON.stringify(reply)}`);
  return client;
}

/**
 * Whether a message published now reaches a fresh subscriber within
 * `timeoutMs`, and how long it took (ms).
 */
async function delivers(world: World, timeoutMs = 5000): Promise<number | undefined> {
  let client: WsClient;
  try {
    client = await subscriber(world, "watch.probe");
  } catch {
    return undefined;
  }
  const started = performance.now();
  const arrived = new Promise<number>((resolve) => {
    client.onMessage = () => resolve(performance.now() - started);
  });
  publish(world, "watch.probe", { probe: true });
  const took = await Promise.race([arrived, delay(timeoutMs).then(() => undefined)]);
  client.close();
  return took;
}

/** Seconds from `started` until Shark delivers again (healthy, and a probe arrives). */
async function recovery(world: World, started: number, timeoutMs = 30_000) {
  const back = await becomes(
    async () => await world.shark.healthy() && await delivers(world, 1000) !== undefined,
    timeoutMs,
  );
  return { recovered: back, recovery_s: back ? (performance.now() - started) / 1000 : null };
}

/** Seconds from `started` until the watching client is closed with 1012 (else null). */
async function closedWith1012(watcher: WsClient, started: number, timeoutMs: number) {
  const closed = await Promise.race([watcher.closed, delay(timeoutMs).then(() => undefined)]);
  if (closed?.code !== 1012) return null;
  return (performance.now() - started) / 1000;
}

async function pubsubFault(
  world: World,
  fault: string,
  inject: () => void | Promise<void>,
  heal: () => void | Promise<void>,
): Promise<Outcome> {
  const watcher = await subscriber(world, "watch.main");
  const started = performance.now();
  await inject();
  const detection = await closedWith1012(watcher, started, world.pubsubBound * 1000 + 10_000);
  const unhealthy = !(await world.shark.healthy());
  await delay(500);
  const healed = performance.now();
  await heal();
  const { recovered, recovery_s } = await recovery(world, healed);
  watcher.close();
  return {
    fault,
    detected: detection !== null && unhealthy,
    detection_s: detection,
    bound_s: world.pubsubBound,
    recovered,
    recovery_s,
    note: `healthz 503 while down: ${unhealthy}`,
  };
}

/** A delay under `ping_timeout`: Shark must keep going, only later. */
async function slowWithinTimeout(world: World, delayMs: number): Promise<Outcome> {
  const watcher = await subscriber(world, "watch.main");
  const latencies: number[] = [];
  watcher.onMessage = (text, at) => latencies.push(at - JSON.parse(text).data.t);
  world.proxy.delayMs = delayMs;
  const started = performance.now();
  let sent = 0;
  while (performance.now() - started < 4000) {
    publish(world, "watch.main", { t: performance.now(), n: sent++ });
    await delay(50);
  }
  await becomes(() => latencies.length >= sent, 3000);
  world.proxy.delayMs = 0;
  const stillOpen = watcher.closeCode === undefined && await world.shark.healthy();
  watcher.close();
  return {
    fault: `redis_slow_${delayMs}ms_under_ping_timeout`,
    detected: !stillOpen,
    detection_s: null,
    bound_s: world.pubsubBound,
    recovered: stillOpen && latencies.length === sent,
    recovery_s: null,
    note: `not noticed (must not be): ${stillOpen}; ${latencies.length}/${sent} delivered, ` +
      `p50 ${quantile(latencies, 0.5).toFixed(0)} ms, max ${quantile(latencies, 1).toFixed(0)} ms`,
  };
}

/** The service drops every connection while `before_subscribe` calls wait on it. */
async function serviceDownMidSubscribe(world: World, clients: number): Promise<Outcome> {
  const { service } = world;
  service.behaviour = ({ path }) => path === "/before_subscribe" ? { kind: "hang" } : ok();
  const before = service.count("/before_subscribe");
  const bystander = await subscriber(world, "watch.main");
  let bystanderGot = 0;
  bystander.onMessage = () => bystanderGot++;
  const subscribing = await Promise.all(
    Array.from({ length: clients }, () => WsClient.connect(world.shark.wsUrl)),
  );
  const replies = subscribing.map((client, i) =>
    client.request({ event: "subscribe", subscription: `svc.${i}` }, 20_000).then(
      (reply) => ({ reply, at: performance.now() }),
      () => ({ reply: {} as Record<string, unknown>, at: performance.now() }),
    )
  );
  await becomes(() => service.count("/before_subscribe") - before >= clients, 5000);
  const started = performance.now();
  service.down();
  for (let i = 0; i < 10; i++) publish(world, "watch.main", { i });
  const answered = await Promise.all(replies);
  const errors = answered.filter(({ reply }) => reply.error === "Service unavailable.").length;
  const detection = Math.max(...answered.map(({ at }) => at - started)) / 1000;
  service.behaviour = ok;
  const healed = performance.now();
  service.up();
  const recovered = await becomes(
    async () => {
      const client = await WsClient.connect(world.shark.wsUrl);
      const reply = await client.request({ event: "subscribe", subscription: "svc.back" });
      client.close();
      return reply.status === "ok";
    },
    10_000,
    100,
  );
  await becomes(() => bystanderGot >= 10, 2000);
  for (const client of [bystander, ...subscribing]) client.close();
  return {
    fault: "service_down_mid_subscribe",
    detected: errors === clients,
    detection_s: detection,
    bound_s: HTTP_BUDGET_S,
    recovered: recovered && bystanderGot === 10,
    recovery_s: recovered ? (performance.now() - healed) / 1000 : null,
    note: `${errors}/${clients} got "Service unavailable."; bystander got ${bystanderGot}/10`,
  };
}

/** SIGTERM with `clients` subscribed clients receiving messages. */
async function sigtermUnderLoad(world: World, clients: number): Promise<Outcome> {
  const { service, shark } = world;
  service.behaviour = ok;
  const before = service.count("/load/on_unsubscribe");
  const connected: WsClient[] = [];
  let received = 0;
  for (let start = 0; start < clients; start += 100) {
    const batch = await Promise.all(
      Array.from(
        { length: Math.min(100, clients - start) },
        (_, i) => subscriber(world, `load.${(start + i) % 50}`),
      ),
    );
    for (const client of batch) client.onMessage = () => received++;
    connected.push(...batch);
  }
  let publishing = true;
  const load = (async () => {
    for (let n = 0; publishing; n++) {
      publish(world, `load.${n % 50}`, { n });
      await delay(1);
    }
  })();
  await delay(2000);
  const receivedBefore = received;
  const stopped = await shark.terminate(60_000);
  publishing = false;
  await load;
  const closes = await Promise.all(connected.map((client) => client.closed));
  const goingAway = closes.filter((event) => event.code === 1001).length;
  const unsubscribed = await becomes(
    () => service.count("/load/on_unsubscribe") - before >= clients,
    5000,
  );
  const calls = service.count("/load/on_unsubscribe") - before;
  const clean = stopped.exit.code === 0 && goingAway === clients && calls === clients;
  return {
    fault: `sigterm_with_${clients}_subscribed_clients`,
    detected: clean,
    detection_s: stopped.seconds,
    bound_s: 30,
    recovered: clean && unsubscribed,
    recovery_s: null,
    note:
      `exit ${stopped.exit.code} after ${stopped.seconds.toFixed(2)} s; ${goingAway}/${clients} ` +
      `closed with 1001; ${calls}/${clients} on_unsubscribe; ${receivedBefore} messages before`,
  };
}

async function main(directory: string): Promise<number> {
  const { values } = harnessArgs({
    clients: { type: "string", default: "500" },
    "ping-interval": { type: "string", default: "0.5" },
    "ping-timeout": { type: "string", default: "1" },
    "no-cluster": { type: "boolean", default: false },
  });
  const clients = Number(values.clients);
  const pingInterval = Number(values["ping-interval"]);
  const pingTimeout = Number(values["ping-timeout"]);
  const redis = await startRedis();
  const proxy = DelayProxy.start(redis.port);
  const service = FaultyService.start(ok);
  const callbacks = (prefix: string) => ({
    before_subscribe: service.url(`${prefix}/before_subscribe`),
    before_unsubscribe: service.url(`${prefix}/before_unsubscribe`),
    on_unsubscribe: service.url(`${prefix}/on_unsubscribe`),
  });
  const shark = await SharkProcess.start(
    {
      server: { shutdown_timeout: 20 },
      pubsub: {
        adapter: "redis",
        redis: {
          url: `redis://127.0.0.1:${proxy.port}/0`,
          ping_interval: pingInterval,
          ping_timeout: pingTimeout,
        },
      },
      http: HTTP,
      services: {
        watch: { require_authentication: false },
        svc: { require_authentication: false, ...callbacks("") },
        load: { require_authentication: false, ...callbacks("/load") },
      },
      log: { level: "fatal" },
    },
    directory,
    values.transport,
  );
  const world: World = {
    redis,
    proxy,
    service,
    shark,
    publisher: await RespConnection.connect(redis.port),
    pubsubBound: pingInterval + pingTimeout,
  };
  const outcomes: Outcome[] = [];
  const run = async (name: string, fault: () => Promise<Outcome>) => {
    log(`fault: ${name}`);
    const outcome = await fault();
    log(`  ${JSON.stringify(outcome)}`);
    outcomes.push(outcome);
  };
  await run(
    "redis frozen",
    () =>
      pubsubFault(
        world,
        "redis_frozen_sigstop",
        () => signalRedis(redis, "SIGSTOP"),
        () => signalRedis(redis, "SIGCONT"),
      ),
  );
  await run(
    "redis killed",
    () =>
      pubsubFault(world, "redis_killed_restarted", () => redis.stop({ kill: true }), async () => {
        await redis.restart();
        world.publisher.close();
        world.publisher = await RespConnection.connect(redis.port);
      }),
  );
  await run("redis slow", () => slowWithinTimeout(world, 150));
  await run("redis slower than ping_timeout", () =>
    pubsubFault(
      world,
      "redis_slow_1500ms_over_ping_timeout",
      () => void (proxy.delayMs = 1500),
      () => void (proxy.delayMs = 0),
    ));
  await run("service down", () => serviceDownMidSubscribe(world, 20));
  await run("sigterm", () => sigtermUnderLoad(world, clients));
  world.publisher.close();
  proxy.close();
  service.down();
  await redis.stop();
  if (!values["no-cluster"]) {
    log("fault: redis cluster (manual failover, primary frozen, primary killed)");
    for (const outcome of await clusterFaults(directory, pingInterval, pingTimeout)) {
      log(`  ${JSON.stringify(outcome)}`);
      outcomes.push(outcome);
    }
  }
  let passed = true;
  for (const outcome of outcomes) {
    const underTimeout = outcome.fault.includes("under_ping_timeout");
    const inTime = outcome.detection_s === null
      ? underTimeout
      : outcome.detection_s <= outcome.bound_s;
    const good = (underTimeout ? !outcome.detected : outcome.detected) && inTime &&
      outcome.recovered;
    passed &&= good;
    report(outcome.fault, { ...outcome, passed: good });
  }
  return passed ? 0 : 1;
}

if (import.meta.main) runHarness(main);
