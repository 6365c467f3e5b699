/**
 * The scenarios of `deno task bench`: for each, the servers it measures
 * (Shark's `main.ts`, the reference `baseline_raw.ts`), the CPUs they get
 * and the load generator's parameters, plus the Shark configuration every
 * scenario shares.
 *
 * @module
 */
import { freePort } from "../tests/helpers/loopback.ts";
import { BENCH_HISTORY, type LoadSpec } from "./loadgen.ts";
import { findBun } from "./_bun.ts";

/** The scenarios, in the order `deno task bench` runs them. */
export const SCENARIOS = [
  "clients",
  "fanout",
  "topics",
  "idle",
  "subrate",
  "parallel",
  "history",
  "recovery",
  "scale",
  "storm",
] as const;
export type Scenario = typeof SCENARIOS[number];

/**
 * Scenarios with a harness of their own (several Shark processes), run only
 * when named: `deno task bench presence`.
 */
export const STANDALONE: Readonly<Record<string, string>> = {
  presence: "bench/presence.ts",
  cluster: "bench/cluster.ts",
};

/** One line per scenario, logged when it starts. */
export const DESCRIPTIONS: Record<Scenario, string> = {
  clients: "load generator check: Deno WebSocket vs raw clients, fanout burst on the baseline",
  fanout: "5,000 subscribers on one topic; 200 publishes through Redis at once, then paced",
  topics: "5,000 connections each on its own topic; 20,000 publishes spread over the topics",
  idle: "as many subscribed idle connections as the fd limit allows",
  subrate:
    "2,000 clients doing auth + subscribe (authorizer, before_subscribe), 200 at a time; median of 3 rounds after a warm-up; raw Deno and raw Bun make the same callbacks",
  parallel: "broadcast_channel adapter: --workers 2 vs one isolate, fanout burst via POST /publish",
  history:
    "history service: bursts through the history script vs plain PUBLISH, to 5,000 subscribers of one topic, then of 5,000 topics",
  recovery:
    "5,000 clients reconnect at once: resubscribe, or recover 50 missed envelopes (one topic; own topics)",
  storm:
    "5,000 clients, each with auth + its own topic (3 callbacks) + a room of a history service: a connect phase, then all disconnect at once and come back (resubscribe; Shark also recovers 50 missed envelopes per room) while a bystander gets a message every 10 ms; against raw Deno and raw Bun",
  scale:
    "fanout burst on N isolates (--workers N) pinned to the first N cores, N = 1, 2, 4, 8 up to the cores there are; the raw baseline on one; generator shards and Redis on the other cores",
};

/** The CPU of the server under test. */
export const SERVER_CPUS = "0";
/** The CPU of the load generator, Redis, the callback service and the orchestrator. */
export const HELPER_CPUS = "1";
/** The publish API secret of the Shark under test. */
export const PUBLISH_SECRET = "bench-publish-secret";
/** Connections the `idle` scenario leaves free below the fd limit (listener, Redis, runtime). */
const FD_MARGIN = 100;

/** What the scenarios need of the run: where the helpers listen, Shark's config, the fd limit. */
export interface Context {
  /** Where Shark writes V8 CPU profiles (`--profile`), if anywhere. */
  readonly profileDir?: string;
  readonly redisPort: number;
  readonly callbackPort: number;
  readonly configPath: string;
  /** The config without the history service, for the broadcast_channel adapter (which has no history). */
  readonly noHistoryConfigPath: string;
  /** Writes a Shark config with Prometheus on `port`; returns its path. */
  readonly configWithMetrics: (port: number) => Promise<string>;
  readonly fdLimit: number;
}

/** A server under test, started for one load generator run. */
export interface Target {
  readonly server: string;
  readonly cpus: string;
  readonly command: (port: number) => string[];
  readonly spec: Partial<LoadSpec>;
  /** CPUs of the load generator (default HELPER_CPUS). */
  readonly helperCpus?: string;
  /** Load generator processes, each with its share of the connections on a topic of its own. */
  readonly shards?: number;
  /** Shark's Prometheus port: its connections per isolate are reported. */
  readonly metricsPort?: number;
}

/** Shark's configuration file for every scenario (`--shark-config` replaces top-level keys). */
export function sharkConfig(redisPort: number, callbackPort: number) {
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

/** `deno run -A ...args`. */
export function deno(...args: string[]): string[] {
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

/** The arguments of a raw baseline (`baseline_raw.ts` or `baseline_bun.ts`) after its script. */
function baselineArgs(context: Context, port: number, flags: string[]): string[] {
  return [
    "--port",
    String(port),
    "--redis-url",
    `redis://127.0.0.1:${context.redisPort}`,
    ...flags,
  ];
}

function baseline(context: Context, ...flags: string[]): (port: number) => string[] {
  return (port) => deno("bench/baseline_raw.ts", ...baselineArgs(context, port, flags));
}

/** The raw Bun baseline (`baseline_bun.ts`), with the same callbacks as Shark. */
function bunBaseline(context: Context, bun: string): (port: number) => string[] {
  const callbacks = `--callbacks=http://127.0.0.1:${context.callbackPort}`;
  return (port) => [bun, "bench/baseline_bun.ts", ...baselineArgs(context, port, [callbacks])];
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

/** The targets of the server named `only` (`deno task bench --only NAME`); all of them without a name. */
export function onlyServer(list: readonly Target[], only: string | undefined): Target[] {
  return list.filter((target) => only === undefined || target.server === only);
}

/** The servers `scenario` measures, in order, each with its load. */
export async function targets(scenario: Scenario, context: Context): Promise<Target[]> {
  const both = (spec: Partial<LoadSpec>): Target[] => [
    { server: "baseline", cpus: SERVER_CPUS, command: baseline(context), spec },
    { server: "shark", cpus: SERVER_CPUS, command: shark(context), spec },
  ];
  // The baselines make the same callbacks as Shark: the ceilings for auth + subscribe.
  const bun = scenario === "subrate" || scenario === "storm" ? await findBun() : undefined;
  const withCallbacks = (spec: Partial<LoadSpec>): Target[] => [
    {
      server: "baseline",
      cpus: SERVER_CPUS,
      command: baseline(context, `--callbacks=http://127.0.0.1:${context.callbackPort}`),
      spec,
    },
    ...(bun
      ? [{ server: "bun", cpus: SERVER_CPUS, command: bunBaseline(context, bun), spec }]
      : []),
    { server: "shark", cpus: SERVER_CPUS, command: shark(context), spec },
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
    case "subrate":
      return withCallbacks({ connections: 2000, concurrency: 200, rounds: 3 });
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
    case "storm":
      return withCallbacks({ connections: 5000, concurrency: 5000, rounds: 1 });
    case "scale":
      return await scaleTargets(context);
  }
}
