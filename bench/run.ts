/**
 * The benchmark suite: `deno task bench` runs every scenario, `deno task
 * bench fanout topics` runs those. For each scenario it starts the server
 * under test (Shark's `main.ts`, then the reference `baseline_raw.ts`)
 * pinned to CPU 0, and the load generator, Redis and the callback service
 * pinned to CPU 1, so that server figures are one core's. It prints a table
 * and one JSON line per result, writes them to `bench/results/`, and stops
 * every process it started, also on failure or Ctrl-C.
 *
 * ```sh
 * deno task bench                      # every scenario, 5–7 minutes (bounded waits: under 10)
 * deno task bench fanout topics        # some of them: clients fanout topics idle subrate parallel history recovery
 * deno task bench fanout --profile bench/results/profiles   # Shark under --cpu-prof, top self time printed
 * deno task bench fanout --shark-config '{"ws_ping":{"interval":0,"timeout":0}}'   # top-level config keys replaced
 * ```
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Child, clockTicks, fdHardLimit, freePort, machineBusyPct } from "./_proc.ts";
import { RespConnection } from "./_resp.ts";
import { BENCH_HISTORY, type LoadSpec, type Result } from "./loadgen.ts";
import { selfTimes } from "./profile_summary.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const SERVER_CPUS = "0";
const HELPER_CPUS = "1";
/** The publish API secret of the Shark under test. */
const PUBLISH_SECRET = "bench-secret";
/** No server start waits longer than this for `/healthz`. */
const START_TIMEOUT_MS = 30_000;
/** No load generator run may last longer than this. */
const LOADGEN_TIMEOUT_MS = 420_000;
/** Connections the `idle` scenario leaves free below the fd limit (listener, Redis, runtime). */
const FD_MARGIN = 100;

/** The scenarios, in the order `deno task bench` runs them. */
const SCENARIOS = [
  "clients",
  "fanout",
  "topics",
  "idle",
  "subrate",
  "parallel",
  "history",
  "recovery",
  "scale",
] as const;
type Scenario = typeof SCENARIOS[number];

const DESCRIPTIONS: Record<Scenario, string> = {
  clients: "load generator check: Deno WebSocket vs raw clients, fanout burst on the baseline",
  fanout: "5,000 subscribers on one topic; 200 publishes through Redis at once, then paced",
  topics: "5,000 connections each on its own topic; 20,000 publishes spread over the topics",
  idle: "as many subscribed idle connections as the fd limit allows",
  subrate: "2,000 clients doing auth + subscribe (authorizer, before_subscribe), 200 at a time",
  parallel: "broadcast_channel adapter: --workers 2 vs one isolate, fanout burst via POST /publish",
  history:
    "history service: bursts through the history script vs plain PUBLISH, to 5,000 subscribers of one topic, then of 5,000 topics",
  recovery:
    "5,000 clients reconnect at once: resubscribe, or recover 50 missed envelopes (one topic; own topics)",
  scale:
    "fanout burst on N isolates (--workers N) pinned to the first N cores, N = 1, 2, 4, 8 up to the cores there are; the raw baseline on one; generator shards and Redis on the other cores",
};

interface Context {
  /** Where Shark writes V8 CPU profiles (`--profile`), if anywhere. */
  readonly profileDir?: string;
  readonly redisPort: number;
  readonly redis: Child;
  readonly callbackPort: number;
  readonly callbacks: Child;
  readonly configPath: string;
  /** The config without the history service, for the broadcast_channel adapter (which has no history). */
  readonly noHistoryConfigPath: string;
  /** Writes a Shark config with Prometheus on `port`; returns its path. */
  readonly configWithMetrics: (port: number) => Promise<string>;
  readonly fdLimit: number;
  readonly redisAdapter: boolean;
}

/** A server under test, started for one load generator run. */
interface Target {
  readonly server: string;
  readonly cpus: string;
  readonly command: (port: number) => string[];
  readonly spec: Partial<LoadSpec>;
  /** Why this target cannot run, if it cannot. */
  readonly skip?: string;
  /** CPUs of the load generator (default HELPER_CPUS). */
  readonly helperCpus?: string;
  /** Load generator processes, each with its share of the connections on a topic of its own. */
  readonly shards?: number;
  /** Shark's Prometheus port: its connections per isolate are reported. */
  readonly metricsPort?: number;
}

const log = (message: string) => console.error(`bench: ${message}`);

function sharkConfig(redisPort: number, callbackPort: number) {
  const callback = (path: string) => `http://127.0.0.1:${callbackPort}${path}`;
  return {
    server: { host: "127.0.0.1", shutdown_timeout: 5 },
    pubsub: { adapter: "redis", redis: { url: `redis://127.0.0.1:${redisPort}/0` } },
    http: { timeout: 10, tries: 2, wait: 0.5 },
    authentication: {
      ticket: { validation_url: callback("/auth"), auth_fields: ["user_id"] },
    },
    services: {
      bench: { require_authentication: false },
      hist: { require_authentication: false, history: BENCH_HISTORY },
      secure: {
        require_authentication: true,
        authorizer: callback("/authorize"),
        before_subscribe: callback("/before_subscribe"),
      },
    },
    publish_api: { secret: PUBLISH_SECRET },
    // Per-connection info lines would measure the logger: warnings and errors only.
    log: { level: "warning", format: "json" },
  };
}

function deno(...args: string[]): string[] {
  return [Deno.execPath(), "run", "-A", ...args];
}

function shark(context: Context, ...flags: string[]): (port: number) => string[] {
  const profile = context.profileDir
    ? ["--cpu-prof", `--cpu-prof-dir=${context.profileDir}`, "--cpu-prof-interval=250"]
    : [];
  const config = flags.includes("broadcast_channel")
    ? context.noHistoryConfigPath
    : context.configPath;
  return (port) =>
    deno(...profile, "main.ts", "--config", config, "--port", String(port), ...flags);
}

function baseline(context: Context, ...flags: string[]): (port: number) => string[] {
  return (port) =>
    deno(
      "bench/baseline_raw.ts",
      "--port",
      String(port),
      "--redis-url",
      `redis://127.0.0.1:${context.redisPort}`,
      ...flags,
    );
}

/**
 * `scale`: N isolates on CPUs 0..N-1; the load generator (in shards, one per
 * remaining core) and Redis on the others, or on every core when none is left.
 */
async function scaleTargets(context: Context): Promise<Target[]> {
  const cores = navigator.hardwareConcurrency;
  const range = (from: number, to: number) => from === to ? `${from}` : `${from}-${to}`;
  const rest = (n: number) => n < cores ? range(n, cores - 1) : range(0, cores - 1);
  const shards = (n: number) => Math.min(8, Math.max(1, cores - n));
  const many = cores >= 8;
  const spec = {
    connections: many ? 18_000 : 5000,
    publishes: many ? 100 : 200,
    rounds: 3,
    concurrency: 256,
  };
  const targets: Target[] = [{
    server: "baseline",
    cpus: "0",
    command: baseline(context),
    spec,
    helperCpus: rest(1),
    shards: shards(1),
  }];
  for (const n of [1, 2, 4, 8, 16, 32, 64].filter((n) => n <= cores)) {
    const metricsPort = freePort();
    const config = await context.configWithMetrics(metricsPort);
    const workers = n > 1 ? ["--workers", String(n)] : [];
    targets.push({
      server: `shark-${n}-isolate${n > 1 ? "s" : ""}`,
      cpus: range(0, n - 1),
      command: (port) => deno("main.ts", "--config", config, "--port", String(port), ...workers),
      spec,
      helperCpus: rest(n),
      shards: shards(n),
      metricsPort,
    });
  }
  return targets;
}

function targets(scenario: Scenario, context: Context): Target[] {
  const noRedis = context.redisAdapter
    ? undefined
    : "adapters/redis.ts is not there yet: Shark with the redis adapter cannot run";
  const both = (spec: Partial<LoadSpec>): Target[] => [
    { server: "baseline", cpus: SERVER_CPUS, command: baseline(context), spec },
    { server: "shark", cpus: SERVER_CPUS, command: shark(context), spec, skip: noRedis },
  ];
  const fanout = { connections: 5000, publishes: 200, rounds: 3, concurrency: 256 };
  switch (scenario) {
    case "clients":
      return (["websocket", "deno-connect", "raw"] as const).map((client) => ({
        server: "baseline",
        cpus: SERVER_CPUS,
        command: baseline(context),
        spec: { ...fanout, scenario: "fanout", client, rounds: 1 },
      }));
    case "fanout":
      return both({
        ...fanout,
        paced: { publishes: 40, deliveriesPerSecond: 10_000 },
        windowed: { size: 4, publishes: 100 },
      });
    case "topics":
      return both({ connections: 5000, publishes: 20_000, rounds: 5, concurrency: 256 });
    case "idle":
      return both({ connections: context.fdLimit - FD_MARGIN, concurrency: 256, rounds: 1 });
    case "subrate": {
      // The baseline makes the same three callbacks as Shark: the ceiling for auth + subscribe.
      const spec = { connections: 2000, concurrency: 200, rounds: 1 };
      const callbacks = `--callbacks=http://127.0.0.1:${context.callbackPort}`;
      return [
        { server: "baseline", cpus: SERVER_CPUS, command: baseline(context, callbacks), spec },
        { server: "shark", cpus: SERVER_CPUS, command: shark(context), spec, skip: noRedis },
      ];
    }
    case "history":
      return [{ server: "shark", cpus: SERVER_CPUS, command: shark(context), spec: fanout }];
    case "recovery": {
      const spec = { connections: 5000, concurrency: 5000, rounds: 1 };
      return [{ server: "shark", cpus: SERVER_CPUS, command: shark(context), spec }];
    }
    case "parallel": {
      // Two isolates need two cores: the server gets both, the generator stays on CPU 1.
      const spec = { ...fanout, publishSecret: PUBLISH_SECRET };
      const flags = ["--adapter", "broadcast_channel"];
      return [
        { server: "shark-1-isolate", cpus: "0,1", command: shark(context, ...flags), spec },
        {
          server: "shark-2-workers",
          cpus: "0,1",
          command: shark(context, ...flags, "--workers", "2"),
          spec,
        },
      ];
    }
    case "scale":
      return [];
  }
}

/** Starts a server and waits until `/healthz` answers 200. */
async function startServer(target: Target): Promise<{ child: Child; port: number }> {
  const port = freePort();
  const child = new Child({
    name: target.server,
    command: target.command(port),
    cpus: target.cpus,
    cwd: ROOT,
  });
  const deadline = performance.now() + START_TIMEOUT_MS;
  let exited: Deno.CommandStatus | undefined;
  child.status.then((status) => exited = status);
  while (performance.now() < deadline) {
    if (exited) {
      throw new StartFailure(
        `${target.server} exited with code ${exited.code} before it was ready:\n${child.tail()}`,
        child.tail(),
      );
    }
    try {
      const response = await fetch(`http://127.0.0.1:${port}/healthz`);
      await response.body?.cancel();
      if (response.ok) return { child, port };
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await child.stop(1000);
  throw new StartFailure(`${target.server} not ready after ${START_TIMEOUT_MS} ms`, child.tail());
}

class StartFailure extends Error {
  constructor(message: string, readonly stderr: string) {
    super(message);
  }
}

/** Other programs busier than this (share of one core) delay a measurement. */
const QUIET_BUSY_PCT = 25;
/** How long a measurement waits for the machine to be quiet before it runs anyway. */
const QUIET_WAIT_MS = 60_000;
/** All waits for quiet together stay under this, so that a run keeps its time bound. */
let quietBudgetMs = 150_000;

/**
 * Waits until the machine is quiet (the servers under test are idle then):
 * on a shared machine a measurement taken beside someone's test run would
 * measure both. Results carry `others_cpu_pct` for what still interfered.
 */
async function waitForQuiet(): Promise<void> {
  const started = performance.now();
  const deadline = started + Math.min(QUIET_WAIT_MS, quietBudgetMs);
  let busy = await machineBusyPct(1000);
  if (busy <= QUIET_BUSY_PCT) return;
  log(`machine busy (${busy}% of a core used by other programs): waiting for quiet`);
  while (busy > QUIET_BUSY_PCT && performance.now() < deadline) busy = await machineBusyPct(1000);
  quietBudgetMs -= performance.now() - started;
  if (busy > QUIET_BUSY_PCT) log(`still busy (${busy}%): measuring anyway, see others_cpu_pct`);
}

async function runLoadgen(spec: LoadSpec, cpus = HELPER_CPUS): Promise<Result[]> {
  const child = new Child({
    name: "loadgen",
    command: deno("bench/loadgen.ts", JSON.stringify(spec)),
    cpus,
    cwd: ROOT,
    stdout: true,
    echo: true,
  });
  const timer = setTimeout(() => {
    log(`load generator still running after ${LOADGEN_TIMEOUT_MS} ms: killed`);
    child.kill();
  }, LOADGEN_TIMEOUT_MS);
  const status = await child.status;
  clearTimeout(timer);
  const stdout = (await child.stdout).trim().split("\n").at(-1) ?? "";
  if (!status.success || !stdout.startsWith("{")) {
    throw new Error(`load generator failed (code ${status.code}):\n${child.tail()}`);
  }
  return JSON.parse(stdout).results;
}

async function runScenario(scenario: Scenario, context: Context): Promise<Result[]> {
  log(`${scenario}: ${DESCRIPTIONS[scenario]}`);
  const results: Result[] = [];
  const list = scenario === "scale" ? await scaleTargets(context) : targets(scenario, context);
  for (const target of list) {
    if (target.skip) {
      results.push(skipped(scenario, target.server, target.skip));
      continue;
    }
    let server: { child: Child; port: number };
    try {
      server = await startServer(target);
    } catch (error) {
      if (!(error instanceof StartFailure)) throw error;
      const unsupported = /--workers is not available|Unknown option '--workers'/.test(
        error.stderr,
      );
      results.push(
        skipped(
          scenario,
          target.server,
          unsupported ? "main.ts has no --workers yet (exit 2: unsupported flag)" : error.message,
        ),
      );
      continue;
    }
    try {
      const spec: LoadSpec = {
        scenario: scenario === "clients" || scenario === "scale" ? "fanout" : scenario,
        server: target.server,
        port: server.port,
        serverPid: server.child.pid,
        helperPids: [context.redis.pid, context.callbacks.pid],
        redisPort: scenario === "parallel" ? undefined : context.redisPort,
        client: "raw",
        connections: 0,
        publishes: 0,
        rounds: 1,
        concurrency: 1,
        ...target.spec,
      };
      let measured: Result[];
      try {
        await waitForQuiet();
        measured = await runShards(spec, target);
        if (target.metricsPort) await addIsolateCounts(measured, target.metricsPort);
      } catch (error) {
        // One failed run must not cost the others: it is reported as a result.
        results.push(skipped(scenario, target.server, `failed: ${(error as Error).message}`));
        continue;
      }
      for (const result of measured) {
        if (scenario === "clients") result.scenario = "clients";
        if (scenario === "clients") result.variant = `client=${spec.client}`;
        if (scenario === "idle") result.fd_limit = context.fdLimit;
        if (scenario === "scale") result.scenario = "scale";
        results.push(result);
        console.log(JSON.stringify(result));
      }
    } finally {
      await server.child.stop();
      reportServerLog(target.server, server.child);
    }
    if (context.profileDir && target.server.startsWith("shark")) {
      await summarizeProfile(context.profileDir, `${scenario}-${target.server}`);
    }
  }
  return results;
}

/**
 * Runs the load generator, in `target.shards` processes at once when asked:
 * each takes its share of the connections on a topic of its own, and their
 * deliveries add up (server figures are the whole server's, from shard 0).
 */
async function runShards(spec: LoadSpec, target: Target): Promise<Result[]> {
  const count = target.shards ?? 1;
  if (count === 1) return await runLoadgen(spec, target.helperCpus);
  const shards = await Promise.all(Array.from({ length: count }, (_, index) =>
    runLoadgen({
      ...spec,
      topic: `bench.scale.${index}`,
      connections: Math.ceil(spec.connections / count),
    }, target.helperCpus)));
  return shards[0].map((first, index) => {
    const rows = shards.map((results) => results[index]);
    const sum = (field: string) => rows.reduce((total, row) => total + Number(row[field] ?? 0), 0);
    const perSecond = sum("msgs_per_s");
    return {
      ...first,
      shards: count,
      subscribers: sum("subscribers"),
      delivered: sum("delivered"),
      msgs_per_s: perSecond,
      server_cpu_us_per_msg: Math.round(Number(first.server_cpu_pct) * 1e4 / perSecond * 10) / 10,
    };
  });
}

/** Adds Shark's connections per isolate (`shark_connections_total` by worker) to its results. */
async function addIsolateCounts(results: Result[], metricsPort: number): Promise<void> {
  const text = await fetch(`http://127.0.0.1:${metricsPort}/metrics`).then((r) => r.text());
  const counts = [...text.matchAll(/^shark_connections_total(?:\{worker="\d+"\})? (\d+)$/gm)]
    .map((match) => Number(match[1]));
  const average = counts.reduce((a, b) => a + b, 0) / counts.length;
  const spread = Math.max(...counts.map((count) => Math.abs(count - average) / average));
  for (const result of results) {
    result.isolate_connections = counts.join("/");
    result.isolate_spread_pct = Math.round(spread * 1000) / 10;
  }
}

/**
 * Shows what the server logged (Shark runs at level warning, so every line
 * is news: a lost Redis connection, slow consumers closed, ...).
 */
function reportServerLog(server: string, child: Child): void {
  const lines = child.stderr.filter((line) => !line.includes('"message":"listening"'));
  if (lines.length === 0) return;
  log(`${server} logged (last ${lines.length} lines):\n  ${lines.join("\n  ")}`);
}

/**
 * Renames the profile the Shark process just wrote after the run it covers
 * and prints its top self-time functions.
 */
async function summarizeProfile(directory: string, name: string): Promise<void> {
  const written: string[] = [];
  for await (const entry of Deno.readDir(directory)) {
    if (entry.name.startsWith("CPU.") && entry.name.endsWith(".cpuprofile")) {
      written.push(entry.name);
    }
  }
  if (written.length === 0) {
    log(`no CPU profile was written to ${directory}`);
    return;
  }
  for (const [index, file] of written.sort().entries()) {
    const path = `${directory}/${name}${index === 0 ? "" : `-${index}`}.cpuprofile`;
    await Deno.rename(`${directory}/${file}`, path);
    const top = selfTimes(JSON.parse(await Deno.readTextFile(path))).slice(0, 20);
    log(
      `${path}: top self time\n${
        top.map((time) => `  ${time.percent.toFixed(1).padStart(5)}%  ${time.name}`).join("\n")
      }`,
    );
  }
}

function skipped(scenario: string, server: string, reason: string): Result {
  const result = { scenario, server, variant: "skipped", skipped: reason };
  log(`${scenario} ${server} skipped: ${reason}`);
  console.log(JSON.stringify(result));
  return result;
}

const number = (value: unknown, unit = "") =>
  typeof value === "number" ? `${value.toLocaleString("en-US")}${unit}` : "";

/** The headline figure of a result, by scenario. */
function figure(result: Result): string {
  if (result.skipped) return `skipped: ${result.skipped}`;
  switch (result.scenario) {
    case "idle":
      return `${number(result.connected)} conns, ${number(result.rss_kib_per_conn)} KiB/conn, ` +
        `${number(result.connect_s)} s to connect+subscribe`;
    case "subrate":
      return `${number(result.per_s)} auth+subscribe/s`;
    case "recovery":
      return `${number(result.caught_up_s)} s to catch up, ${number(result.recovered)} recovered` +
        (result.complete === false ? " (INCOMPLETE)" : "");
    default:
      return `${number(result.msgs_per_s)} msg/s` +
        (result.complete === false ? " (INCOMPLETE)" : "") +
        (result.isolate_connections
          ? `, connections per isolate ${result.isolate_connections}`
          : "");
  }
}

function latency(result: Result): string {
  const parts = [];
  if (typeof result.first_ms === "number") parts.push(`first ${result.first_ms}`);
  if (typeof result.p50_ms === "number") parts.push(`p50 ${result.p50_ms}`);
  if (typeof result.p90_ms === "number") parts.push(`p90 ${result.p90_ms}`);
  if (typeof result.p99_ms === "number") parts.push(`p99 ${result.p99_ms}`);
  if (typeof result.max_ms === "number") parts.push(`max ${result.max_ms}`);
  return parts.length ? `${parts.join(" / ")} ms` : "";
}

/** The results as a Markdown table. */
function table(results: Result[]): string {
  const header = [
    "scenario",
    "variant",
    "server",
    "result",
    "latency",
    "server CPU µs/msg (op)",
    "server CPU %",
    "gen CPU %",
    "redis+cb CPU %",
    "others (steal) CPU %",
    "peak RSS",
  ];
  const rows = results.map((result) => [
    String(result.scenario),
    String(result.variant ?? ""),
    String(result.server),
    figure(result),
    latency(result),
    number(result.server_cpu_us_per_msg ?? result.server_cpu_us_per_op),
    number(result.server_cpu_pct),
    number(result.gen_cpu_pct),
    number(result.helpers_cpu_pct),
    typeof result.others_cpu_pct === "number"
      ? `${result.others_cpu_pct} (${result.steal_pct ?? 0})`
      : "",
    number(result.peak_rss_mib ?? result.rss_after_mib, " MiB"),
  ]);
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column].length))
  );
  const line = (cells: string[]) =>
    `| ${cells.map((cell, column) => cell.padEnd(widths[column])).join(" | ")} |`;
  return [
    line(header),
    `|${widths.map((width) => "-".repeat(width + 2)).join("|")}|`,
    ...rows.map(line),
  ].join("\n");
}

interface Ratio {
  readonly name: string;
  readonly value: number | null;
  readonly target: string;
  readonly pass: boolean | null;
}

/** Shark/baseline (or 2 workers / 1 isolate) ratios against the issue's targets. */
function ratios(results: Result[]): Ratio[] {
  const find = (scenario: string, variant: string, server: string) =>
    results.find((result) =>
      result.scenario === scenario && result.variant === variant && result.server === server &&
      !result.skipped
    );
  const ratio = (
    name: string,
    scenario: string,
    variant: string,
    field: string,
    target: string,
    pass: (value: number) => boolean,
    servers: [string, string] = ["shark", "baseline"],
    variants: [string, string] = [variant, variant],
  ): Ratio => {
    const top = find(scenario, variants[0], servers[0])?.[field];
    const bottom = find(scenario, variants[1], servers[1])?.[field];
    const value = typeof top === "number" && typeof bottom === "number" && bottom !== 0
      ? Math.round(top / bottom * 100) / 100
      : null;
    return { name, value, target, pass: value === null ? null : pass(value) };
  };
  /** Shark's `top` variant against its `bottom` variant of one scenario, figure by figure. */
  const variantRatios = (
    scenario: string,
    top: string,
    bottom: string,
    fields: [string, string][],
  ) =>
    fields.map(([name, field]) =>
      ratio(`${scenario} ${top} ${name} (/ ${bottom})`, scenario, "", field, "report", () => true, [
        "shark",
        "shark",
      ], [top, bottom])
    );
  const subrateVariant = String(results.find((r) => r.scenario === "subrate")?.variant ?? "c200");
  return [
    ratio("fanout msg/s", "fanout", "burst", "msgs_per_s", ">= 4", (v) => v >= 4),
    ratio(
      "fanout server CPU/msg",
      "fanout",
      "burst",
      "server_cpu_us_per_msg",
      "<= 0.3",
      (v) => v <= 0.3,
    ),
    ratio("fanout window of 4 msg/s", "fanout", "window4", "msgs_per_s", ">= 1.5", (v) => v >= 1.5),
    ratio("fanout paced p99", "fanout", "paced", "p99_ms", "<= 1.0", (v) => v <= 1),
    ratio("fanout first delivery", "fanout", "burst", "first_ms", "report", () => true),
    ratio("topics msg/s", "topics", "burst", "msgs_per_s", ">= 0.8", (v) => v >= 0.8),
    ratio("idle RSS/conn", "idle", "idle", "rss_kib_per_conn", "<= 1.0", (v) => v <= 1),
    ratio("subrate /s", "subrate", subrateVariant, "per_s", ">= 0.8", (v) => v >= 0.8),
    ratio(
      "parallel msg/s (2 workers / 1)",
      "parallel",
      "burst",
      "msgs_per_s",
      ">= 1.6",
      (v) => v >= 1.6,
      ["shark-2-workers", "shark-1-isolate"],
    ),
    ...["fanout", "topics"].flatMap((shape) =>
      variantRatios("history", `${shape}-history`, `${shape}-plain`, [
        ["msg/s", "msgs_per_s"],
        ["server CPU/msg", "server_cpu_us_per_msg"],
        ["redis CPU/publish", "redis_cpu_us_per_publish"],
      ])
    ),
    ...["recover-one-topic", "recover-own-topics"].flatMap((variant) =>
      variantRatios("recovery", variant, "resubscribe", [
        ["time to catch up", "caught_up_s"],
        ["server CPU", "server_cpu_ms"],
        ["redis+cb CPU", "helpers_cpu_ms"],
      ])
    ),
    ...scaleRatios(results),
    ratio(
      "parallel CPU/msg (2 workers / 1)",
      "parallel",
      "burst",
      "server_cpu_us_per_msg",
      "report",
      () => true,
      ["shark-2-workers", "shark-1-isolate"],
    ),
  ];
}

/**
 * `scale`: N isolates against one (target 0.8·N where the generator has cores
 * of its own, i.e. N < cores), and one isolate against the raw baseline.
 */
function scaleRatios(results: Result[]): Ratio[] {
  const scale = results.filter((result) => result.scenario === "scale" && !result.skipped);
  const rate = (server: string) =>
    scale.find((result) => result.server === server)?.msgs_per_s as number | undefined;
  const one = rate("shark-1-isolate");
  const raw = rate("baseline");
  const cores = navigator.hardwareConcurrency;
  const list: Ratio[] = [];
  if (one !== undefined && raw !== undefined) {
    const value = Math.round(one / raw * 100) / 100;
    list.push({ name: "scale 1 isolate / raw", value, target: ">= 1.0", pass: value >= 1 });
  }
  for (const result of scale) {
    const n = Number(/^shark-(\d+)-isolates$/.exec(String(result.server))?.[1]);
    if (!n || one === undefined) continue;
    const value = Math.round(Number(result.msgs_per_s) / one * 100) / 100;
    const spare = n < cores;
    list.push({
      name: `scale ${n} isolates / 1`,
      value,
      target: spare ? `>= ${0.8 * n}` : "report",
      pass: value >= 0.8 * n,
    });
  }
  return list;
}

function ratioTable(list: Ratio[]): string {
  const rows = list.map((ratio) =>
    `| ${ratio.name} | ${ratio.value ?? "n/a"} | ${ratio.target} | ${
      ratio.pass === null ? "n/a" : ratio.target === "report" ? "—" : ratio.pass ? "yes" : "NO"
    } |`
  );
  return ["| ratio | value | target | met |", "|---|---|---|---|", ...rows].join("\n");
}

async function startHelpers(): Promise<
  Omit<
    Context,
    "configPath" | "noHistoryConfigPath" | "configWithMetrics" | "fdLimit" | "redisAdapter"
  >
> {
  const redisPort = freePort();
  const redis = new Child({
    name: "redis",
    command: [
      "redis-server",
      "--port",
      String(redisPort),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--protected-mode",
      "no",
      "--loglevel",
      "warning",
      // A server that lags a burst must not be cut off by Redis: that would be another benchmark.
      "--client-output-buffer-limit",
      "pubsub 0 0 0",
    ],
    cpus: HELPER_CPUS,
  });
  const callbackPort = freePort();
  const callbacks = new Child({
    name: "callback service",
    command: deno("bench/callback_service.ts", "--port", String(callbackPort)),
    cpus: HELPER_CPUS,
    cwd: ROOT,
  });
  const deadline = performance.now() + START_TIMEOUT_MS;
  for (;;) {
    try {
      const connection = await RespConnection.connect(redisPort);
      const pong = await connection.command("PING");
      connection.close();
      const stats = await fetch(`http://127.0.0.1:${callbackPort}/stats`);
      await stats.body?.cancel();
      if (pong === "PONG" && stats.ok) break;
    } catch {
      // Not up yet.
    }
    if (performance.now() > deadline) {
      throw new Error(
        `redis or the callback service did not start:\n${redis.tail()}\n${callbacks.tail()}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { redisPort, redis, callbackPort, callbacks };
}

async function machine(): Promise<Record<string, string | number>> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo");
  return {
    date: new Date().toISOString(),
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    nproc: navigator.hardwareConcurrency,
    cpu: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? "unknown",
    fd_limit: await fdHardLimit(),
    clk_tck: await clockTicks(),
    redis: new TextDecoder().decode(
      (await new Deno.Command("redis-server", { args: ["--version"], stdout: "piped" }).output())
        .stdout,
    ).trim(),
  };
}

/** The run's temporary directory (Shark's config), removed also on Ctrl-C. */
let temporary: string | undefined;

async function main(): Promise<number> {
  const { positionals, values } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: { profile: { type: "string" }, "shark-config": { type: "string" } },
  });
  const unknown = positionals.filter((name) => !(SCENARIOS as readonly string[]).includes(name));
  if (unknown.length > 0) {
    console.error(`unknown scenario ${unknown.join(", ")}; choose from ${SCENARIOS.join(", ")}`);
    return 2;
  }
  const chosen = positionals.length > 0 ? positionals as Scenario[] : [...SCENARIOS];
  // The orchestrator stays off the server's CPU too.
  await new Deno.Command("taskset", { args: ["-a", "-p", "-c", HELPER_CPUS, String(Deno.pid)] })
    .output();
  const facts = await machine();
  log(`machine: ${JSON.stringify(facts)}`);
  console.log(JSON.stringify({ machine: facts }));
  const started = performance.now();
  const directory = await Deno.makeTempDir({ prefix: "shark-bench-" });
  temporary = directory;
  const results: Result[] = [];
  try {
    const helpers = await startHelpers();
    const configPath = `${directory}/shark.json`;
    const overrides = values["shark-config"] ? JSON.parse(values["shark-config"]) : {};
    const config = { ...sharkConfig(helpers.redisPort, helpers.callbackPort), ...overrides };
    await Deno.writeTextFile(configPath, JSON.stringify(config, null, 2));
    const noHistoryConfigPath = `${directory}/shark-no-history.json`;
    const { hist: _, ...services } = config.services;
    await Deno.writeTextFile(noHistoryConfigPath, JSON.stringify({ ...config, services }));
    const configWithMetrics = async (port: number) => {
      const path = `${directory}/shark-metrics-${port}.json`;
      const metrics = { prometheus: { host: "127.0.0.1", port } };
      await Deno.writeTextFile(path, JSON.stringify({ ...config, metrics }));
      return path;
    };
    const profileDir = values.profile === undefined ? undefined : await Deno.realPath(
      await Deno.mkdir(values.profile, { recursive: true }).then(() => values.profile!),
    );
    const context: Context = {
      ...helpers,
      profileDir,
      configPath,
      noHistoryConfigPath,
      configWithMetrics,
      fdLimit: Number(facts.fd_limit),
      redisAdapter: await exists(`${ROOT}adapters/redis.ts`),
    };
    for (const scenario of chosen) {
      results.push(...await runScenario(scenario, context));
      if (scenario === "subrate") {
        const stats = await fetch(`http://127.0.0.1:${context.callbackPort}/stats`);
        log(`callback service calls so far: ${await stats.text()}`);
      }
    }
  } finally {
    await Promise.all([...Child.running].map((child) => child.stop(3000)));
    await Deno.remove(directory, { recursive: true });
  }
  const seconds = Math.round((performance.now() - started) / 1000);
  console.log(`\n${table(results)}\n`);
  console.log(`${ratioTable(ratios(results))}\n`);
  console.log(`${chosen.length} scenario(s) in ${seconds} s`);
  await saveResults(facts, results);
  return 0;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function saveResults(facts: Record<string, unknown>, results: Result[]): Promise<void> {
  const directory = `${ROOT}bench/results`;
  await Deno.mkdir(directory, { recursive: true });
  const path = `${directory}/${String(facts.date).replaceAll(":", "-")}.jsonl`;
  const lines = [{ machine: facts }, ...results, { ratios: ratios(results) }];
  await Deno.writeTextFile(path, lines.map((line) => JSON.stringify(line)).join("\n") + "\n");
  log(`results written to ${path}`);
}

if (import.meta.main) {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => {
      Child.killAll();
      if (temporary) Deno.removeSync(temporary, { recursive: true });
      Deno.exit(130);
    });
  }
  let code = 1;
  try {
    code = await main();
  } catch (error) {
    console.error(`bench failed: ${error instanceof Error ? error.stack : error}`);
    Child.killAll();
  }
  Deno.exit(code);
}
