/**
 * The benchmark suite: `deno task bench` runs every scenario, `deno task
 * bench fanout topics` runs those. For each scenario it starts the server
 * under test (Shark's `main.ts`, the reference `baseline_raw.ts`, and for
 * `subrate` and `storm` also raw Bun, `baseline_bun.ts`, with the `bun` on
 * PATH or the one `npx -y bun@1.4.5` brings, skipped loudly without one)
 * pinned to CPU 0, and the load generator, Redis and the callback service
 * pinned to CPU 1, so that server figures are one core's. It prints a table
 * and one JSON line per result, writes them to `bench/results/`, and stops
 * every process it started, also on failure or Ctrl-C. The scenarios are
 * in `_scenarios.ts`, the table and the ratios in `_report.ts`; Redis is
 * started by the tests' launcher (`tests/helpers/redis_server.ts`).
 *
 * ```sh
 * deno task bench                      # every scenario, 5–7 minutes (bounded waits: under 10)
 * deno task bench fanout topics        # some of them: clients fanout topics idle subrate parallel history recovery scale storm
 * deno task bench presence             # two Shark nodes on Redis: presence against none (run only when named)
 * deno task bench fanout --profile bench/results/profiles   # Shark under --cpu-prof, top self time printed
 * deno task bench fanout --shark-config '{"ws_ping":{"interval":0,"timeout":0}}'   # top-level config keys replaced
 * deno task bench storm --only shark   # one server of each scenario (e.g. to alternate two checkouts' runs)
 * ```
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { answersOk, freePort } from "../tests/helpers/loopback.ts";
import { RedisServer } from "../tests/helpers/redis_server.ts";
import { tempDir } from "../tests/helpers/temp.ts";
import { waitUntil } from "../tests/helpers/wait.ts";
import { pinToHelperCpu, startCallbackService } from "./_harness.ts";
import { Child, clockTicks, fdHardLimit, machineBusyPct } from "./_proc.ts";
import { ratios, ratioTable, saveResults, table } from "./_report.ts";
import {
  type Context,
  deno,
  DESCRIPTIONS,
  HELPER_CPUS,
  onlyServer,
  type Scenario,
  SCENARIOS,
  sharkConfig,
  STANDALONE,
  type Target,
  targets,
} from "./_scenarios.ts";
import type { LoadSpec, Result } from "./loadgen.ts";
import { selfTimes } from "./profile_summary.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
/** No server start waits longer than this for `/healthz`. */
const START_TIMEOUT_MS = 30_000;
/** No load generator run may last longer than this. */
const LOADGEN_TIMEOUT_MS = 420_000;

/** The helpers every scenario shares, pinned beside the load generator. */
interface Helpers {
  readonly redis: RedisServer;
  readonly callbackPort: number;
  readonly callbacks: Child;
}

const log = (message: string) => console.error(`bench: ${message}`);

/** Starts a server and waits until `/healthz` answers 200. */
async function startServer(target: Target): Promise<{ child: Child; port: number }> {
  const port = freePort();
  const child = new Child({
    name: target.server,
    command: target.command(port),
    cpus: target.cpus,
    cwd: ROOT,
  });
  let exited: Deno.CommandStatus | undefined;
  child.status.then((status) => exited = status);
  try {
    await waitUntil(
      () => {
        if (exited) {
          throw new StartFailure(
            `${target.server} exited with code ${exited.code} before it was ready:\n${child.tail()}`,
          );
        }
        return answersOk(`http://127.0.0.1:${port}/healthz`);
      },
      START_TIMEOUT_MS,
      `${target.server} ready`,
    );
  } catch (error) {
    await child.stop(1000);
    throw error instanceof StartFailure ? error : new StartFailure((error as Error).message);
  }
  return { child, port };
}

/** A server that did not start: the scenario reports it and goes on. */
class StartFailure extends Error {}

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

async function runScenario(
  scenario: Scenario,
  context: Context,
  helpers: Helpers,
  only?: string,
): Promise<Result[]> {
  log(`${scenario}: ${DESCRIPTIONS[scenario]}`);
  const results: Result[] = [];
  const chosen = onlyServer(await targets(scenario, context), only);
  if (chosen.length === 0) log(`${scenario}: no server named ${only}: nothing run`);
  for (const target of chosen) {
    let server: { child: Child; port: number };
    try {
      server = await startServer(target);
    } catch (error) {
      if (!(error instanceof StartFailure)) throw error;
      results.push(skipped(scenario, target.server, error.message));
      continue;
    }
    try {
      const spec: LoadSpec = {
        scenario: scenario === "clients" || scenario === "scale" ? "fanout" : scenario,
        server: target.server,
        port: server.port,
        serverPid: server.child.pid,
        helperPids: [helpers.redis.pid!, helpers.callbacks.pid],
        callbackPort: helpers.callbackPort,
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

/** Starts Redis and the callback service on CPU 1 and waits until both answer. */
async function startHelpers(): Promise<Helpers> {
  const redis = await RedisServer.start({
    args: [
      "--protected-mode",
      "no",
      "--loglevel",
      "warning",
      // A server that lags a burst must not be cut off by Redis: that would be another benchmark.
      "--client-output-buffer-limit",
      "pubsub 0 0 0",
    ],
    spawn: (command) => new Child({ name: "redis", command, cpus: HELPER_CPUS }).process,
  });
  const { callbacks, callbackPort } = await startCallbackService();
  return { redis, callbackPort, callbacks };
}

/** What the figures were measured on, printed first and saved with them. */
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
    options: {
      profile: { type: "string" },
      "shark-config": { type: "string" },
      only: { type: "string" },
    },
  });
  const standalone = positionals.filter((name) => Object.hasOwn(STANDALONE, name));
  const named = positionals.filter((name) => !Object.hasOwn(STANDALONE, name));
  const unknown = named.filter((name) => !(SCENARIOS as readonly string[]).includes(name));
  if (unknown.length > 0) {
    const known = [...SCENARIOS, ...Object.keys(STANDALONE)].join(", ");
    console.error(`unknown scenario ${unknown.join(", ")}; choose from ${known}`);
    return 2;
  }
  for (const name of standalone) {
    const child = new Child({
      name,
      command: deno(STANDALONE[name]),
      cpus: HELPER_CPUS,
      cwd: ROOT,
      stdout: true,
      echo: true,
    });
    const status = await child.status;
    console.log(await child.stdout);
    if (!status.success) return status.code || 1;
  }
  if (standalone.length > 0 && named.length === 0) return 0;
  const chosen = named.length > 0 ? named as Scenario[] : [...SCENARIOS];
  // The orchestrator stays off the server's CPU too.
  await pinToHelperCpu();
  const facts = await machine();
  log(`machine: ${JSON.stringify(facts)}`);
  console.log(JSON.stringify({ machine: facts }));
  const started = performance.now();
  await using directory = await tempDir("shark-bench-");
  temporary = directory.path;
  const results: Result[] = [];
  try {
    const helpers = await startHelpers();
    const configPath = `${directory.path}/shark.json`;
    const overrides = values["shark-config"] ? JSON.parse(values["shark-config"]) : {};
    const config = { ...sharkConfig(helpers.redis.port, helpers.callbackPort), ...overrides };
    await Deno.writeTextFile(configPath, JSON.stringify(config, null, 2));
    const noHistoryConfigPath = `${directory.path}/shark-no-history.json`;
    const { hist: _, ...services } = config.services;
    await Deno.writeTextFile(noHistoryConfigPath, JSON.stringify({ ...config, services }));
    const configWithMetrics = async (port: number) => {
      const path = `${directory.path}/shark-metrics-${port}.json`;
      const metrics = { prometheus: { host: "127.0.0.1", port } };
      await Deno.writeTextFile(path, JSON.stringify({ ...config, metrics }));
      return path;
    };
    const profileDir = values.profile === undefined ? undefined : await Deno.realPath(
      await Deno.mkdir(values.profile, { recursive: true }).then(() => values.profile!),
    );
    const context: Context = {
      redisPort: helpers.redis.port,
      callbackPort: helpers.callbackPort,
      profileDir,
      configPath,
      noHistoryConfigPath,
      configWithMetrics,
      fdLimit: Number(facts.fd_limit),
    };
    for (const scenario of chosen) {
      results.push(...await runScenario(scenario, context, helpers, values.only));
      if (scenario === "subrate") {
        const stats = await fetch(`http://127.0.0.1:${context.callbackPort}/stats`);
        log(`callback service calls so far: ${await stats.text()}`);
      }
    }
  } finally {
    await Promise.all([...Child.running].map((child) => child.stop(3000)));
  }
  const seconds = Math.round((performance.now() - started) / 1000);
  console.log(`\n${table(results)}\n`);
  console.log(`${ratioTable(ratios(results))}\n`);
  console.log(`${chosen.length} scenario(s) in ${seconds} s`);
  log(`results written to ${await saveResults(`${ROOT}bench/results`, facts, results)}`);
  return 0;
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
