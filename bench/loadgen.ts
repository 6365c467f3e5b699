/**
 * The load generator: one process (pinned by `bench/run.ts` to the CPU that
 * does not run the server) that opens the client connections, publishes,
 * timestamps every received frame and reads the CPU and memory of the server
 * from `/proc`. It publishes itself, so that the publish time inside each
 * message (`data.t`, epoch ms) and the receive time come from one clock.
 *
 * Usage: `deno run -A bench/loadgen.ts '<LoadSpec as JSON>'`; prints one JSON
 * line `{"results": [...]}` on stdout, progress on stderr.
 *
 * @module
 */
import {
  type BenchClient,
  type ClientKind,
  connectClient,
  epochNow,
  type MessageSink,
} from "./_raw_ws.ts";
import {
  cpuMs,
  listenOverflows,
  machineTicks,
  peakRssKiB,
  rssKiB,
  rssOfKiB,
  treePids,
} from "./_proc.ts";
import { encodeCommand, RespConnection } from "./_resp.ts";
import type { Pair } from "./_bystander.ts";

/** What one load generator run does; `bench/run.ts` builds it. */
export interface LoadSpec {
  /** The workload. */
  readonly scenario:
    | "fanout"
    | "topics"
    | "idle"
    | "subrate"
    | "parallel"
    | "history"
    | "recovery"
    | "storm";
  /** Which server this is, copied into every result. */
  readonly server: string;
  /** The server's port on 127.0.0.1. */
  readonly port: number;
  /** The server's pid, for its CPU and memory. */
  readonly serverPid: number;
  /** Helpers sharing the generator's CPU (Redis, callback service). */
  readonly helperPids: readonly number[];
  /** Redis port for publishing (all scenarios but `parallel`). */
  readonly redisPort?: number;
  /** The callback service's port, whose `/stats` count the callbacks (`storm`). */
  readonly callbackPort?: number;
  /** Bearer secret of `POST /publish` (`parallel`). */
  readonly publishSecret?: string;
  /** Client implementation; `raw` unless checking the other. */
  readonly client: ClientKind;
  /** Connections (subscribers; for `subrate` the clients). */
  readonly connections: number;
  /** Publishes per measured round (`fanout`, `topics`, `parallel`). */
  readonly publishes: number;
  /** Measured rounds; the table shows their median. */
  readonly rounds: number;
  /** `fanout` paced variant: publishes, and deliveries per second to aim at. */
  readonly paced?: { readonly publishes: number; readonly deliveriesPerSecond: number };
  /**
   * `fanout` windowed variant: `publishes` per round, at most `size` of them
   * not yet delivered to every subscriber (the next goes out when one is).
   */
  readonly windowed?: { readonly size: number; readonly publishes: number };
  /** The topic of `fanout` (default `bench.fanout`): shards of one run take one each. */
  readonly topic?: string;
  /** Connections (or clients) in flight at once while connecting. */
  readonly concurrency: number;
}

/** One measured figure set, as printed by `bench/run.ts`. */
export type Result = Record<string, string | number | boolean | null>;

/** Local addresses clients bind, so that more sockets fit than one address has ports. */
const LOCAL_ADDRESSES = Array.from({ length: 8 }, (_, index) => `127.0.0.${index + 1}`);
const CONNECT_TIMEOUT_MS = 15_000;
const REPLY_TIMEOUT_MS = 15_000;
/** No connect phase runs longer than this, whatever its size. */
const CONNECT_PHASE_MS = 120_000;
/** No delivery round waits longer than this for its last message. */
const ROUND_TIMEOUT_MS = 60_000;
/** `history` of the bench config's `hist` service, which script publishes pass on. */
export const BENCH_HISTORY = { size: 100, ttl: 300 } as const;
/** Envelopes each client of the `recovery` storm missed and recovers. */
const MISSED = 50;
/** A few bytes of body, so that frames are not unrealistically tiny. */
const PAD = "lorem ipsum dolor sit amet, consectetur adipiscing";

const log = (message: string) => console.error(`loadgen: ${message}`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Collects the latency of every published-message frame of a round. */
class Recorder {
  latencies = new Float64Array(0);
  count = 0;
  first = Infinity;
  last = 0;
  #expected = 0;
  #done: (() => void) | undefined;
  #step = 0;
  #onStep: (() => void) | undefined;

  /** Starts a round expecting `expected` frames; resolves when they all arrived. */
  start(expected: number): Promise<void> {
    if (this.latencies.length < expected) this.latencies = new Float64Array(expected);
    this.count = 0;
    this.first = Infinity;
    this.last = 0;
    this.#expected = expected;
    this.#onStep = undefined;
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#done = resolve;
    return promise;
  }

  message(sentAt: number, now: number): void {
    if (this.count < this.latencies.length) this.latencies[this.count] = now - sentAt;
    if (++this.count === this.#expected) this.#done?.();
    if (this.#onStep && this.count % this.#step === 0) this.#onStep();
    if (now < this.first) this.first = now;
    if (now > this.last) this.last = now;
  }

  /** Calls `onStep` each time another `step` frames have arrived in this round. */
  every(step: number, onStep: () => void): void {
    this.#step = step;
    this.#onStep = onStep;
  }

  /** Sorted latencies of this round (ms). */
  sorted(): Float64Array {
    return this.latencies.subarray(0, Math.min(this.count, this.latencies.length)).sort();
  }
}

function percentile(sorted: Float64Array, q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

const round1 = (value: number | null) => value === null ? null : Math.round(value * 10) / 10;

/** CPU of the server, the generator and its helpers over one phase. */
class Meter {
  readonly #spec: LoadSpec;
  #wall = 0;
  #server = 0;
  #self = 0;
  #helpers = 0;
  #machine = { busy: 0, steal: 0, total: 0 };
  #peakRss = 0;
  #sampler: ReturnType<typeof setInterval> | undefined;

  constructor(spec: LoadSpec) {
    this.#spec = spec;
  }

  async start(): Promise<void> {
    [this.#server, this.#self, this.#helpers] = await this.#cpu();
    this.#machine = machineTicks();
    this.#peakRss = rssKiB(this.#spec.serverPid);
    // Samples the server's memory while the phase runs: its peak is a result.
    // The process tree is looked up once: a /proc scan every 100 ms would cost the generator.
    const pids = treePids(this.#spec.serverPid);
    this.#sampler = setInterval(() => {
      this.#peakRss = Math.max(this.#peakRss, rssOfKiB(pids));
    }, 100);
    this.#wall = epochNow();
  }

  /** Ends the phase: CPU milliseconds used and each side's share of one core. */
  async stop() {
    const wall = epochNow() - this.#wall;
    clearInterval(this.#sampler);
    const [server, self, helpers] = await this.#cpu();
    const machine = machineTicks();
    const pct = (ms: number) => Math.round(ms / wall * 1000) / 10;
    // Everything else that ran meanwhile (other programs, interrupts): a disturbed run shows here.
    const machineShare = (ticks: number) =>
      ticks / (machine.total - this.#machine.total) * navigator.hardwareConcurrency * 100;
    const machinePct = machineShare(machine.busy - this.#machine.busy);
    const stealPct = machineShare(machine.steal - this.#machine.steal);
    const ours = (server - this.#server + self - this.#self + helpers - this.#helpers) / wall * 100;
    return {
      wallMs: wall,
      serverCpuMs: server - this.#server,
      selfCpuMs: self - this.#self,
      helpersCpuMs: helpers - this.#helpers,
      peakRssKiB: Math.max(this.#peakRss, rssKiB(this.#spec.serverPid)),
      /** Each side's share of one core, as every result reports it. */
      shares: {
        server_cpu_pct: pct(server - this.#server),
        gen_cpu_pct: pct(self - this.#self),
        helpers_cpu_pct: pct(helpers - this.#helpers),
        others_cpu_pct: Math.round(Math.max(0, machinePct - ours) * 10) / 10,
        steal_pct: Math.round(stealPct * 10) / 10,
      },
    };
  }

  async #cpu(): Promise<[number, number, number]> {
    let helpers = 0;
    for (const pid of this.#spec.helperPids) helpers += await cpuMs(pid);
    return [await cpuMs(this.#spec.serverPid), await cpuMs(Deno.pid), helpers];
  }
}

/** What {@link Meter.stop} measured over a phase. */
type Measured = Awaited<ReturnType<Meter["stop"]>>;

/** Clients opened by {@link connectMany}. */
interface Connected {
  /** Every client whose connection opened (subscribed or not). */
  readonly clients: BenchClient[];
  /** Indices of the clients whose subscribe succeeded. */
  readonly subscribed: Set<number>;
  /** Clients that failed to connect, authenticate or subscribe. */
  readonly failures: number;
  readonly firstError?: string;
}

/** Opens `count` clients, `concurrency` at a time; each authenticates if asked, then subscribes. */
async function connectMany(
  spec: LoadSpec,
  recorder: Recorder,
  count: number,
  topicOf: (index: number) => string,
  options: {
    auth?: boolean;
    latencies?: number[];
    /** More keys of each client's subscribe request. */
    request?: (index: number) => Record<string, unknown>;
    /** Collects each client's subscribe reply. */
    replies?: Map<number, string>;
  } = {},
): Promise<Connected> {
  const clients: BenchClient[] = [];
  const subscribed = new Set<number>();
  let failures = 0;
  let firstError: string | undefined;
  let next = 0;
  const deadline = performance.now() + CONNECT_PHASE_MS;
  const worker = async () => {
    while (next < count && performance.now() < deadline) {
      const index = next++;
      const started = performance.now();
      try {
        const client = await connectClient(spec.client, {
          port: spec.port,
          localAddress: LOCAL_ADDRESSES[index % LOCAL_ADDRESSES.length],
          sink: recorder,
          timeoutMs: CONNECT_TIMEOUT_MS,
        });
        clients.push(client);
        if (options.auth) {
          client.send(JSON.stringify({ event: "auth", method: "ticket", ticket: `u${index}` }));
          expectOk(await client.reply(REPLY_TIMEOUT_MS));
        }
        client.send(JSON.stringify({
          event: "subscribe",
          subscription: topicOf(index),
          ...options.request?.(index),
        }));
        const reply = await client.reply(REPLY_TIMEOUT_MS);
        expectOk(reply);
        options.replies?.set(index, reply);
        subscribed.add(index);
        options.latencies?.push(performance.now() - started);
      } catch (error) {
        failures++;
        firstError ??= error instanceof Error ? error.message : String(error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(spec.concurrency, count) }, worker));
  if (failures > 0) log(`${failures} of ${count} clients failed, first: ${firstError}`);
  return { clients, subscribed, failures, firstError };
}

/** {@link connectMany} for `spec.connections` clients, with what connecting them cost. */
async function connectMeasured(
  spec: LoadSpec,
  recorder: Recorder,
  topicOf: (index: number) => string,
  options: { auth?: boolean; latencies?: number[] } = {},
): Promise<Connected & { cpu: Measured }> {
  const meter = new Meter(spec);
  await meter.start();
  const connected = await connectMany(spec, recorder, spec.connections, topicOf, options);
  return { ...connected, cpu: await meter.stop() };
}

function expectOk(reply: string): void {
  const parsed = JSON.parse(reply);
  if (parsed.status !== "ok") throw new Error(`not ok: ${reply.slice(0, 200)}`);
}

function envelope(topic: string, index: number): string {
  return `{"subscription":"${topic}","data":{"t":${
    epochNow().toFixed(3)
  },"i":${index},"text":"${PAD}"}}`;
}

/**
 * Publishes `count` envelopes through Redis, round-robin over `topics`, in
 * writes of `chunk` commands. Each write goes out before the next chunk is
 * built (and timestamped), so that the first messages are not held back
 * while the rest of a big burst is being built.
 */
async function publishRedis(
  redis: RespConnection,
  topics: readonly string[],
  count: number,
  command: PublishCommand = plainPublish,
  chunk = 500,
): Promise<void> {
  const replies: Promise<void>[] = [];
  for (let sent = 0; sent < count;) {
    const size = Math.min(chunk, count - sent);
    let batch = "";
    for (let index = 0; index < size; index++, sent++) {
      const topic = topics[sent % topics.length];
      batch += encodeCommand(command(topic, envelope(topic, sent)));
    }
    const written = Promise.withResolvers<void>();
    const reply = redis.send(batch, size, written.resolve);
    replies.push(reply.then(checkReceivers));
    await Promise.race([written.promise, reply]);
  }
  await Promise.all(replies);
}

/** The Redis command that publishes `payload` to `topic`. */
type PublishCommand = (topic: string, payload: string) => string[];

const plainPublish: PublishCommand = (topic, payload) => ["PUBLISH", topic, payload];

/** Publishing through Shark's history script, as a service in another language would. */
async function scriptPublish(redis: RespConnection): Promise<PublishCommand> {
  const text = await Deno.readTextFile(new URL("../adapters/redis_history.lua", import.meta.url));
  const sha = await redis.command("SCRIPT", "LOAD", text);
  if (typeof sha !== "string") throw new Error(`SCRIPT LOAD failed: ${sha}`);
  const size = String(BENCH_HISTORY.size);
  const ttl = String(BENCH_HISTORY.ttl);
  return (topic, payload) => [
    "EVALSHA",
    sha,
    "2",
    `{${topic}}:history`,
    `{${topic}}:meta`,
    "publish",
    topic,
    size,
    ttl,
    payload,
  ];
}

/**
 * Every PUBLISH must have reached the server's subscription (a reply of 0
 * means it did not); a script publish answers its position.
 */
function checkReceivers(replies: unknown[]): void {
  const ok = (reply: unknown) => reply === 1 || Array.isArray(reply);
  const missed = replies.filter((reply) => !ok(reply)).length;
  if (missed > 0) log(`${missed} publishes reached no subscriber: ${replies.find((r) => !ok(r))}`);
}

/** Publishes through `POST /publish`, `perRequest` envelopes per request, all requests at once. */
async function publishHttp(spec: LoadSpec, topic: string, count: number, perRequest = 20) {
  const requests: Promise<void>[] = [];
  for (let sent = 0; sent < count;) {
    const size = Math.min(perRequest, count - sent);
    const body = `[${Array.from({ length: size }, () => envelope(topic, sent++)).join(",")}]`;
    requests.push(
      fetch(`http://127.0.0.1:${spec.port}/publish`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${spec.publishSecret}`,
          "content-type": "application/json",
        },
        body,
      }).then(async (response) => {
        const text = await response.text();
        if (!response.ok) log(`publish answered ${response.status}: ${text.slice(0, 200)}`);
      }),
    );
  }
  await Promise.all(requests);
}

function median(values: number[]): number | null {
  const finite = values.filter((value) => value !== null && Number.isFinite(value)).sort((a, b) =>
    a - b
  );
  if (finite.length === 0) return null;
  return finite[Math.floor((finite.length - 1) / 2)];
}

/** The median of each numeric field over rounds (booleans: all of them). */
function medianOf(rounds: Result[]): Result {
  const merged: Result = { ...rounds[0] };
  for (const key of Object.keys(merged)) {
    const values = rounds.map((round) => round[key]);
    if (typeof merged[key] === "number") merged[key] = median(values as number[]);
    else if (typeof merged[key] === "boolean") merged[key] = values.every(Boolean);
  }
  merged.rounds = rounds.length;
  return merged;
}

/**
 * One burst round: `publish()` sends everything at once; measured from the
 * first write until the last expected frame arrived.
 */
async function burstRound(
  spec: LoadSpec,
  recorder: Recorder,
  expected: number,
  publish: () => Promise<void>,
): Promise<Result> {
  const meter = new Meter(spec);
  const done = recorder.start(expected);
  await meter.start();
  const started = epochNow();
  await publish();
  await Promise.race([done, sleep(ROUND_TIMEOUT_MS)]);
  const cpu = await meter.stop();
  const delivered = recorder.count;
  const seconds = (recorder.last - started) / 1000;
  const sorted = recorder.sorted();
  return {
    delivered,
    complete: delivered === expected,
    msgs_per_s: Math.round(delivered / seconds),
    server_cpu_us_per_msg: round1(cpu.serverCpuMs * 1000 / delivered),
    gen_cpu_us_per_msg: round1(cpu.selfCpuMs * 1000 / delivered),
    first_ms: round1(recorder.first - started),
    p50_ms: round1(percentile(sorted, 0.5)),
    p99_ms: round1(percentile(sorted, 0.99)),
    helpers_cpu_ms: round1(cpu.helpersCpuMs),
    ...cpu.shares,
    peak_rss_mib: Math.round(Math.max(cpu.peakRssKiB, peakRssKiB(spec.serverPid)) / 1024),
  };
}

async function closeAll(clients: BenchClient[]): Promise<void> {
  for (const client of clients) client.close();
  await sleep(200);
}

async function fanout(spec: LoadSpec, recorder: Recorder): Promise<Result[]> {
  const topic = spec.topic ?? (spec.scenario === "parallel" ? "bench.parallel" : "bench.fanout");
  const { clients, subscribed, failures, cpu: connected } = await connectMeasured(
    spec,
    recorder,
    () => topic,
  );
  const subscribers = subscribed.size;
  log(`${subscribers} subscribers in ${Math.round(connected.wallMs)} ms`);
  const redis = spec.redisPort ? await RespConnection.connect(spec.redisPort) : undefined;
  const publish = (count: number) =>
    redis ? publishRedis(redis, [topic], count) : publishHttp(spec, topic, count);
  const base = { scenario: spec.scenario, server: spec.server, subscribers, failures };
  const results: Result[] = [];
  // Warm-up: JIT and buffers of both sides, not measured.
  await burstRound(spec, recorder, subscribers * 20, () => publish(20));
  // Paced before the bursts: the memory a burst leaves behind must not weigh on it.
  const pacedResult = spec.paced && redis
    ? await paced(spec, recorder, subscribers, redis, topic)
    : undefined;
  const rounds: Result[] = [];
  for (let round = 0; round < spec.rounds; round++) {
    await sleep(300);
    rounds.push(
      await burstRound(spec, recorder, subscribers * spec.publishes, () => publish(spec.publishes)),
    );
    log(`${spec.scenario} round ${round + 1}: ${JSON.stringify(rounds.at(-1))}`);
  }
  if (rounds.length > 0) {
    results.push({ ...base, variant: "burst", publishes: spec.publishes, ...medianOf(rounds) });
  }
  if (spec.windowed && redis) {
    const { size, publishes } = spec.windowed;
    const windowed: Result[] = [];
    for (let round = 0; round < spec.rounds; round++) {
      await sleep(300);
      windowed.push(
        await burstRound(spec, recorder, subscribers * publishes, () => {
          // Each subscriber's frames arrive in order: every `subscribers`
          // frames, one more publish has been delivered to all (on average).
          let sent = 0;
          const one = () =>
            redis.send(encodeCommand(["PUBLISH", topic, envelope(topic, sent++)]), 1)
              .then(checkReceivers);
          while (sent < Math.min(size, publishes)) one();
          recorder.every(subscribers, () => {
            if (sent < publishes) one();
          });
          return Promise.resolve();
        }),
      );
      log(`windowed round ${round + 1}: ${JSON.stringify(windowed.at(-1))}`);
    }
    results.push({ ...base, variant: `window${size}`, publishes, ...medianOf(windowed) });
  }
  if (pacedResult) results.push({ ...base, ...pacedResult });
  redis?.close();
  await closeAll(clients);
  return results;
}

/** Publishes one message every `subscribers / deliveriesPerSecond` seconds. */
async function paced(
  spec: LoadSpec,
  recorder: Recorder,
  subscribers: number,
  redis: RespConnection,
  topic: string,
): Promise<Result> {
  const { publishes, deliveriesPerSecond } = spec.paced!;
  const intervalMs = subscribers / deliveriesPerSecond * 1000;
  await sleep(1000);
  const meter = new Meter(spec);
  const expected = subscribers * publishes;
  const done = recorder.start(expected);
  await meter.start();
  const started = performance.now();
  for (let index = 0; index < publishes; index++) {
    // Absolute deadlines: a late tick does not shift the following ones.
    const wait = started + index * intervalMs - performance.now();
    if (wait > 0) await sleep(wait);
    redis.send(encodeCommand(["PUBLISH", topic, envelope(topic, index)]), 1).then(checkReceivers);
  }
  await Promise.race([done, sleep(ROUND_TIMEOUT_MS)]);
  const cpu = await meter.stop();
  const sorted = recorder.sorted();
  return {
    variant: "paced",
    deliveries_per_s_target: deliveriesPerSecond,
    publishes,
    delivered: recorder.count,
    complete: recorder.count === expected,
    msgs_per_s: Math.round(recorder.count / (cpu.wallMs / 1000)),
    server_cpu_us_per_msg: round1(cpu.serverCpuMs * 1000 / recorder.count),
    gen_cpu_us_per_msg: round1(cpu.selfCpuMs * 1000 / recorder.count),
    p50_ms: round1(percentile(sorted, 0.5)),
    p90_ms: round1(percentile(sorted, 0.9)),
    p99_ms: round1(percentile(sorted, 0.99)),
    max_ms: round1(sorted.at(-1) ?? null),
    ...cpu.shares,
  };
}

async function topics(spec: LoadSpec, recorder: Recorder): Promise<Result[]> {
  const names = Array.from({ length: spec.connections }, (_, index) => `bench.t${index}`);
  const { clients, subscribed, failures } = await connectMany(
    spec,
    recorder,
    spec.connections,
    (index) => names[index],
  );
  log(`${subscribed.size} clients on their own topics`);
  const redis = await RespConnection.connect(spec.redisPort!);
  // Publishes go round-robin over every topic; only subscribed ones deliver.
  const expectedOf = (count: number) => {
    let expected = 0;
    for (let index = 0; index < count; index++) {
      if (subscribed.has(index % names.length)) expected++;
    }
    return expected;
  };
  await burstRound(
    spec,
    recorder,
    expectedOf(names.length),
    () => publishRedis(redis, names, names.length),
  );
  const rounds: Result[] = [];
  for (let round = 0; round < spec.rounds; round++) {
    await sleep(300);
    rounds.push(
      await burstRound(
        spec,
        recorder,
        expectedOf(spec.publishes),
        () => publishRedis(redis, names, spec.publishes),
      ),
    );
    log(`topics round ${round + 1}: ${JSON.stringify(rounds.at(-1))}`);
  }
  redis.close();
  await closeAll(clients);
  return [{
    scenario: "topics",
    server: spec.server,
    variant: "burst",
    connections: subscribed.size,
    failures,
    publishes: spec.publishes,
    ...medianOf(rounds),
  }];
}

async function idle(spec: LoadSpec, recorder: Recorder): Promise<Result[]> {
  await sleep(500);
  const before = rssKiB(spec.serverPid);
  const { clients, subscribed, failures, firstError, cpu } = await connectMeasured(
    spec,
    recorder,
    () => "bench.idle",
  );
  // Let the server's allocations settle before reading its memory.
  await sleep(2000);
  const after = rssKiB(spec.serverPid);
  const connected = subscribed.size;
  log(`${connected} idle subscribers in ${Math.round(cpu.wallMs)} ms`);
  const result: Result = {
    scenario: "idle",
    server: spec.server,
    variant: "idle",
    attempted: spec.connections,
    connected,
    failures,
    first_error: firstError ?? null,
    connect_s: round1(cpu.wallMs / 1000),
    connects_per_s: Math.round(connected / (cpu.wallMs / 1000)),
    rss_before_mib: Math.round(before / 1024),
    rss_after_mib: Math.round(after / 1024),
    rss_kib_per_conn: round1((after - before) / connected),
    ...cpu.shares,
  };
  await closeAll(clients);
  return [result];
}

/** Clients of the `subrate` warm-up round, not measured: JIT and pools of both sides. */
const SUBRATE_WARM_UP = 400;

/**
 * `spec.connections` clients doing `auth` + `subscribe` (three callbacks),
 * `spec.concurrency` at a time, in `spec.rounds` rounds after a warm-up; the
 * median round is reported (a round lasts 1–2 s: one alone is noisy).
 */
async function subrate(spec: LoadSpec, recorder: Recorder): Promise<Result[]> {
  const warmUp = await connectMany(spec, recorder, SUBRATE_WARM_UP, (index) => `secure.w${index}`, {
    auth: true,
  });
  await closeAll(warmUp.clients);
  const rounds: Result[] = [];
  for (let round = 0; round < spec.rounds; round++) {
    await sleep(300);
    const latencies: number[] = [];
    const { clients, failures, firstError, cpu } = await connectMeasured(
      spec,
      recorder,
      (index) => `secure.r${round}.s${index}`,
      { auth: true, latencies },
    );
    const sorted = Float64Array.from(latencies).sort();
    const completed = latencies.length;
    rounds.push({
      scenario: "subrate",
      server: spec.server,
      variant: `c${spec.concurrency}`,
      clients: spec.connections,
      completed,
      failures,
      first_error: firstError ?? null,
      per_s: Math.round(completed / (cpu.wallMs / 1000)),
      p50_ms: round1(percentile(sorted, 0.5)),
      p99_ms: round1(percentile(sorted, 0.99)),
      server_cpu_us_per_op: round1(cpu.serverCpuMs * 1000 / completed),
      ...cpu.shares,
    });
    log(`subrate round ${round + 1}: ${JSON.stringify(rounds.at(-1))}`);
    await closeAll(clients);
  }
  return [medianOf(rounds)];
}

/**
 * The cost of history per published envelope: the same subscribers get
 * alternating bursts of plain PUBLISHes and of script publishes (positions,
 * a capped stream, a ttl) to the same history topics; first 5,000 clients on
 * one topic, then each on its own topic, where the per-envelope cost weighs
 * most.
 */
async function history(spec: LoadSpec, recorder: Recorder): Promise<Result[]> {
  const redis = await RespConnection.connect(spec.redisPort!);
  const kinds = { plain: plainPublish, history: await scriptPublish(redis) };
  const results: Result[] = [];
  for (const shape of ["fanout", "topics"] as const) {
    const names = shape === "fanout"
      ? ["hist.fanout"]
      : Array.from({ length: spec.connections }, (_, index) => `hist.t${index}`);
    const { clients, subscribed, failures } = await connectMany(
      spec,
      recorder,
      spec.connections,
      (index) => names[index % names.length],
    );
    log(`${subscribed.size} subscribers of ${names.length} history topic(s)`);
    const publishes = shape === "fanout" ? spec.publishes : 4 * spec.connections;
    const expected = shape === "fanout"
      ? subscribed.size * publishes
      : Array.from({ length: publishes }, (_, index) => index % names.length)
        .filter((index) => subscribed.has(index)).length;
    const rounds: Record<string, Result[]> = { plain: [], history: [] };
    for (let round = -1; round < spec.rounds; round++) {
      for (const [kind, command] of Object.entries(kinds)) {
        await sleep(300);
        const result = await burstRound(
          spec,
          recorder,
          expected,
          () => publishRedis(redis, names, publishes, command),
        );
        // Round -1 warms both sides up and is not measured.
        if (round < 0) continue;
        result.redis_cpu_us_per_publish = round1(Number(result.helpers_cpu_ms) * 1000 / publishes);
        rounds[kind].push(result);
        log(`history ${shape}-${kind} round ${round + 1}: ${JSON.stringify(result)}`);
      }
    }
    for (const [kind, measured] of Object.entries(rounds)) {
      results.push({
        scenario: "history",
        server: spec.server,
        variant: `${shape}-${kind}`,
        subscribers: subscribed.size,
        failures,
        publishes,
        ...medianOf(measured),
      });
    }
    await closeAll(clients);
  }
  redis.close();
  return results;
}

/**
 * A recovery storm: every client subscribes and notes its position, all
 * disconnect, {@link MISSED} envelopes per topic are published, and all
 * reconnect at once. Measured from the first reconnect until every client
 * has caught up: `resubscribe` (subscribe again without `recover`, as a
 * SocketShark client does), `recover-one-topic` (all on one topic) and
 * `recover-own-topics` (each on its own).
 */
async function recovery(spec: LoadSpec, recorder: Recorder): Promise<Result[]> {
  const redis = await RespConnection.connect(spec.redisPort!);
  const script = await scriptPublish(redis);
  const results: Result[] = [];
  const variants = [
    { variant: "resubscribe", ownTopics: false, recover: false },
    { variant: "recover-one-topic", ownTopics: false, recover: true },
    { variant: "recover-own-topics", ownTopics: true, recover: true },
  ];
  for (const [number, { variant, ownTopics, recover }] of variants.entries()) {
    const names = ownTopics
      ? Array.from({ length: spec.connections }, (_, index) => `hist.r${number}.${index}`)
      : [`hist.r${number}`];
    const topicOf = (index: number) => names[index % names.length];
    const positions = new Map<number, string>();
    const first = await connectMany(spec, recorder, spec.connections, topicOf, {
      replies: positions,
    });
    await closeAll(first.clients);
    await publishRedis(redis, names, names.length * MISSED, script);
    await sleep(1000);
    const expected = recover ? positions.size * MISSED : 0;
    const replies = new Map<number, string>();
    const latencies: number[] = [];
    const meter = new Meter(spec);
    const done = recorder.start(expected);
    await meter.start();
    const started = epochNow();
    const storm = await connectMany(spec, recorder, spec.connections, topicOf, {
      latencies,
      replies,
      request: (index) => {
        const reply = positions.get(index);
        if (!recover || !reply) return {};
        const { offset, epoch } = JSON.parse(reply);
        return { recover: { offset, epoch } };
      },
    });
    const subscribedAt = epochNow();
    if (expected > 0) await Promise.race([done, sleep(ROUND_TIMEOUT_MS)]);
    const cpu = await meter.stop();
    const recovered = [...replies.values()].filter((reply) => JSON.parse(reply).recovered).length;
    const sorted = Float64Array.from(latencies).sort();
    const caughtUp = (Math.max(subscribedAt, expected > 0 ? recorder.last : 0) - started) / 1000;
    results.push({
      scenario: "recovery",
      server: spec.server,
      variant,
      clients: spec.connections,
      subscribed: replies.size,
      recovered,
      missed_per_client: recover ? MISSED : 0,
      replayed: recorder.count,
      complete: recorder.count === expected,
      failures: first.failures + storm.failures,
      caught_up_s: round1(caughtUp),
      subscribe_p50_ms: round1(percentile(sorted, 0.5)),
      subscribe_p99_ms: round1(percentile(sorted, 0.99)),
      server_cpu_ms: Math.round(cpu.serverCpuMs),
      helpers_cpu_ms: Math.round(cpu.helpersCpuMs),
      server_cpu_us_per_op: round1(cpu.serverCpuMs * 1000 / spec.connections),
      ...cpu.shares,
      peak_rss_mib: Math.round(cpu.peakRssKiB / 1024),
    });
    log(`recovery ${variant}: ${JSON.stringify(results.at(-1))}`);
    await closeAll(storm.clients);
  }
  redis.close();
  return results;
}

/** Rooms of the `storm`: each client's history subscription is `hist.room<index % STORM_ROOMS>`. */
const STORM_ROOMS = 100;
/** The bystander's publishes during a storm: one every this many milliseconds. */
const BYSTANDER_INTERVAL_MS = 10;
/**
 * How long the bystander is measured without a storm first, after
 * {@link SETTLE_MS}: 2 s right after the clients connected gave 185 samples
 * (p99 = the second worst) and caught the tail of the connect work, 17–20
 * ms on every server, raw ones included.
 */
const QUIET_MS = 5000;
/** The wait between the last client subscribed and the quiet measurement. */
const SETTLE_MS = 1000;

/** One client of the storm, and the position its room's reply gave. */
interface StormClient {
  readonly client: BenchClient;
  readonly position: { offset: number; epoch: string } | undefined;
}

/**
 * One storm client: connect, `auth` (a ticket callback), subscribe its own
 * `secure.u<index>` (authorizer and before_subscribe) and its room (recovering
 * from `from` when given).
 */
async function stormClient(
  spec: LoadSpec,
  index: number,
  sink: MessageSink,
  from: StormClient["position"],
): Promise<StormClient> {
  const client = await connectClient(spec.client, {
    port: spec.port,
    localAddress: LOCAL_ADDRESSES[index % LOCAL_ADDRESSES.length],
    sink,
    timeoutMs: CONNECT_TIMEOUT_MS,
  });
  try {
    client.send(JSON.stringify({ event: "auth", method: "ticket", ticket: `u${index}` }));
    expectOk(await client.reply(REPLY_TIMEOUT_MS));
    client.send(JSON.stringify({ event: "subscribe", subscription: `secure.u${index}` }));
    const room = `hist.room${index % STORM_ROOMS}`;
    client.send(JSON.stringify({
      event: "subscribe",
      subscription: room,
      ...(from ? { recover: from } : {}),
    }));
    expectOk(await client.reply(REPLY_TIMEOUT_MS));
    const reply = JSON.parse(await client.reply(REPLY_TIMEOUT_MS));
    if (reply.status !== "ok") throw new Error(`not ok: ${JSON.stringify(reply).slice(0, 200)}`);
    if (from && !reply.recovered) throw new Error(`not recovered: ${JSON.stringify(reply)}`);
    const position = typeof reply.epoch === "string"
      ? { offset: reply.offset, epoch: reply.epoch }
      : undefined;
    return { client, position };
  } catch (error) {
    client.close();
    throw error;
  }
}

/** Runs `task` for indices 0..count-1, `concurrency` at a time; counts the failures. */
async function forEach<T>(
  count: number,
  concurrency: number,
  task: (index: number) => Promise<T>,
): Promise<{ done: Map<number, T>; failures: number; firstError?: string }> {
  const done = new Map<number, T>();
  let failures = 0;
  let firstError: string | undefined;
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const index = next++;
      try {
        done.set(index, await task(index));
      } catch (error) {
        failures++;
        firstError ??= error instanceof Error ? error.message : String(error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  if (failures > 0) log(`${failures} of ${count} failed, first: ${firstError}`);
  return { done, failures, firstError };
}

/**
 * The bystander, in a process of its own (`_bystander.ts`): `window()`
 * gives the latencies of the messages it was published between two epoch
 * times, once `stop()` has collected them.
 */
async function startBystander(spec: LoadSpec) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./_bystander.ts", import.meta.url).pathname,
      JSON.stringify({
        port: spec.port,
        redisPort: spec.redisPort,
        topic: "bench.bystander",
        intervalMs: BYSTANDER_INTERVAL_MS,
      }),
    ],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).values();
  let text = "";
  while (!text.includes("\n")) {
    const next = await lines.next();
    if (next.done) throw new Error("the bystander exited before it was ready");
    text += next.value;
  }
  if (!text.startsWith("ready")) throw new Error(`bystander: ${text}`);
  let pairs: Pair[] = [];
  return {
    async stop(): Promise<void> {
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode("stop\n"));
      await writer.close();
      for await (const chunk of lines) text += chunk;
      await child.status;
      pairs = JSON.parse(text.slice(text.indexOf("\n") + 1));
    },
    window(prefix: string, from: number, to: number): Result {
      const sorted = Float64Array.from(
        pairs.filter(([sentAt]) => sentAt >= from && sentAt <= to).map(([sent, got]) => got - sent),
      ).sort();
      return {
        [`${prefix}_messages`]: sorted.length,
        [`${prefix}_p50_ms`]: round1(percentile(sorted, 0.5)),
        [`${prefix}_p90_ms`]: round1(percentile(sorted, 0.9)),
        [`${prefix}_p99_ms`]: round1(percentile(sorted, 0.99)),
        [`${prefix}_max_ms`]: round1(sorted.at(-1) ?? null),
      };
    },
  };
}

/**
 * A reconnect storm. First a connect phase (`connect`: every client opens a
 * WebSocket and subscribes one plain topic, all at once). Then every client
 * connects with `auth`, its own `secure.u<i>` (three callbacks in all) and a
 * room of a history service; a bystander subscribed to `bench.bystander`
 * gets a publish every {@link BYSTANDER_INTERVAL_MS}. Each storm: every
 * client disconnects at once, {@link MISSED} envelopes are published to every
 * room, and all come back at once: `resubscribe` (the room without
 * `recover`, as a SocketShark client does) and, on Shark, `recover` (from
 * the position of the last reply). Measured from the first reconnect until
 * every client is subscribed and, recovering, has its missed envelopes: the
 * time, the server's CPU per client, callbacks per second and the
 * bystander's delivery latency during the storm (and before it, quiet).
 */
async function storm(spec: LoadSpec, recorder: Recorder): Promise<Result[]> {
  const redis = await RespConnection.connect(spec.redisPort!);
  // The raw baseline keeps no history: it reconnects without recovering.
  const history = spec.server.startsWith("shark");
  const script = history ? await scriptPublish(redis) : plainPublish;
  const rooms = Array.from({ length: STORM_ROOMS }, (_, index) => `hist.room${index}`);
  const count = spec.connections;
  const results: Result[] = [];
  const base = { scenario: "storm", server: spec.server, clients: count };

  const connect = new Meter(spec);
  let overflows = listenOverflows();
  await connect.start();
  const plain = await forEach(count, count, async (index) => {
    const client = await connectClient(spec.client, {
      port: spec.port,
      localAddress: LOCAL_ADDRESSES[index % LOCAL_ADDRESSES.length],
      sink: recorder,
      timeoutMs: CONNECT_TIMEOUT_MS,
    });
    client.send(JSON.stringify({ event: "subscribe", subscription: `bench.c${index % 100}` }));
    expectOk(await client.reply(REPLY_TIMEOUT_MS));
    return client;
  });
  const connected = await connect.stop();
  results.push({
    ...base,
    variant: "connect",
    connected: plain.done.size,
    failures: plain.failures,
    conns_per_s: Math.round(plain.done.size / (connected.wallMs / 1000)),
    listen_overflows: listenOverflows() - overflows,
    server_cpu_us_per_op: round1(connected.serverCpuMs * 1000 / plain.done.size),
    ...connected.shares,
  });
  log(`storm connect: ${JSON.stringify(results.at(-1))}`);
  await closeAll([...plain.done.values()]);

  let clients = await forEach(count, 500, (index) => stormClient(spec, index, recorder, undefined));
  const bystander = await startBystander(spec);
  await sleep(SETTLE_MS);
  const quiet = [epochNow(), 0];
  await sleep(QUIET_MS);
  quiet[1] = epochNow();
  const windows: [Result, number, number][] = [];

  for (const variant of history ? ["resubscribe", "recover"] : ["resubscribe"]) {
    const recover = variant === "recover";
    const before = new Map([...clients.done].map(([index, { position }]) => [index, position]));
    await closeAll([...clients.done.values()].map(({ client }) => client));
    if (history) await publishRedis(redis, rooms, rooms.length * MISSED, script);
    await sleep(1000);
    const stormSink = new Recorder();
    const expected = recover ? before.size * MISSED : 0;
    const caughtUp = stormSink.start(expected);
    const callbacksBefore = await callbackCalls(spec);
    const meter = new Meter(spec);
    overflows = listenOverflows();
    await meter.start();
    const started = epochNow();
    clients = await forEach(
      count,
      count,
      (index) => stormClient(spec, index, stormSink, recover ? before.get(index) : undefined),
    );
    const subscribedAt = epochNow();
    if (expected > 0) await Promise.race([caughtUp, sleep(ROUND_TIMEOUT_MS)]);
    const backAt = Math.max(subscribedAt, expected > 0 ? stormSink.last : 0);
    const cpu = await meter.stop();
    const callbacks = (await callbackCalls(spec)) - callbacksBefore;
    const seconds = (backAt - started) / 1000;
    results.push({
      ...base,
      variant,
      back: clients.done.size,
      failures: clients.failures,
      first_error: clients.firstError ?? null,
      missed_per_client: recover ? MISSED : 0,
      replayed: stormSink.count,
      complete: stormSink.count >= expected && clients.done.size === count,
      caught_up_s: round1(seconds),
      subscribed_s: round1((subscribedAt - started) / 1000),
      callbacks_per_s: Math.round(callbacks / ((subscribedAt - started) / 1000)),
      listen_overflows: listenOverflows() - overflows,
      server_cpu_ms: Math.round(cpu.serverCpuMs),
      server_cpu_us_per_op: round1(cpu.serverCpuMs * 1000 / count),
      ...cpu.shares,
      peak_rss_mib: Math.round(cpu.peakRssKiB / 1024),
    });
    windows.push([results.at(-1)!, started, backAt]);
    log(`storm ${variant}: ${JSON.stringify(results.at(-1))}`);
  }
  await bystander.stop();
  for (const [result, from, to] of windows) {
    Object.assign(result, bystander.window("bystander", from, to));
    Object.assign(result, bystander.window("bystander_quiet", quiet[0], quiet[1]));
  }
  await closeAll([...clients.done.values()].map(({ client }) => client));
  redis.close();
  return results;
}

/** The callbacks the callback service has answered so far (0 without one). */
async function callbackCalls(spec: LoadSpec): Promise<number> {
  if (!spec.callbackPort) return 0;
  const stats = await fetch(`http://127.0.0.1:${spec.callbackPort}/stats`).then((r) => r.json());
  return Object.values(stats as Record<string, number>).reduce((sum, calls) => sum + calls, 0);
}

const SCENARIOS = { fanout, topics, idle, subrate, parallel: fanout, history, recovery, storm };

if (import.meta.main) {
  const spec: LoadSpec = JSON.parse(Deno.args[0]);
  const recorder = new Recorder();
  const results = await SCENARIOS[spec.scenario](spec, recorder);
  console.log(JSON.stringify({ results }));
  // Open sockets and timers must not keep the process alive.
  Deno.exit(0);
}
