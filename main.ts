/**
 * The `shark` command: configuration from a file, `SHARK_CONFIG` or embedded
 * defaults, CLI overrides, logging, `Deno.serve`, the Prometheus listener and
 * signals. Deno wiring only; the engine lives in `src/`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { dispose, getLogger } from "@logtape/logtape";
import denoJson from "./deno.json" with { type: "json" };
import { ConfigError, loadConfig, type SharkConfig } from "./mod.ts";
import { serve, serveMetrics, setUpLogging, StartupError } from "./cli/serve.ts";
import { isolateMemoryMetrics, processMemoryMetrics } from "./cli/memory_metrics.ts";
import { WorkerPool } from "./cli/workers.ts";

const HELP =
  `Shark ${denoJson.version}: a WebSocket message router, wire-compatible with SocketShark.

Usage: deno run -A main.ts [options]

Options:
  --config PATH       shark.json to load (else the SHARK_CONFIG environment
                      variable as JSON text, else embedded defaults)
  --host HOST         server.host
  --port PORT         server.port (0 picks a free port)
  --adapter NAME      pubsub.adapter: memory, broadcast_channel or redis
  --redis-url URL     pubsub.redis.url
  --log-level LEVEL   log.level: trace, debug, info, warning, error, fatal
  --transport NAME    server.transport: shark (Shark's own WebSocket server,
                      the default) or deno (Deno.serve, Deno.upgradeWebSocket)
  --workers N         run N isolates on the same port (needs a cross-isolate
                      adapter: broadcast_channel or redis)
  --check             validate the configuration and exit (0 valid, 2 invalid)
  --help              show this help
  --version           print the version

Exit codes: 0 clean exit, 1 start-up failure (e.g. Redis unreachable),
2 invalid configuration or arguments.
`;

/** What a newcomer who ran `deno task start` can do next. */
const NEXT_STEPS =
  "no service to subscribe to yet: deno task quickstart serves an open demo service (see the README), deno task demo runs a chat in the browser on the client SDK, examples/quickstart.json and shark.example.json are configurations to start from, docs/README.md explains the protocol and deployment";

interface Loaded {
  readonly config: SharkConfig;
  readonly source: string;
}

function parseCli(args: string[]) {
  try {
    return parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        config: { type: "string" },
        host: { type: "string" },
        port: { type: "string" },
        adapter: { type: "string" },
        "redis-url": { type: "string" },
        "log-level": { type: "string" },
        transport: { type: "string" },
        workers: { type: "string" },
        check: { type: "boolean", default: false },
        help: { type: "boolean", default: false },
        version: { type: "boolean", default: false },
      },
    }).values;
  } catch (error) {
    throw new StartupError(`${(error as Error).message}\nRun with --help for usage.`, 2);
  }
}

type CliValues = ReturnType<typeof parseCli>;

async function readRawConfig(values: CliValues): Promise<{ raw: unknown; source: string }> {
  if (values.config !== undefined) {
    let text: string;
    try {
      text = await Deno.readTextFile(values.config);
    } catch (error) {
      throw new StartupError(
        `cannot read --config ${values.config}: ${(error as Error).message}`,
        2,
      );
    }
    try {
      return { raw: JSON.parse(text), source: values.config };
    } catch (error) {
      throw new StartupError(`${values.config} is not valid JSON: ${(error as Error).message}`, 2);
    }
  }
  const fromEnv = Deno.env.get("SHARK_CONFIG");
  if (fromEnv !== undefined && fromEnv.trim() !== "") {
    try {
      return { raw: JSON.parse(fromEnv), source: "SHARK_CONFIG" };
    } catch (error) {
      throw new StartupError(`SHARK_CONFIG is not valid JSON: ${(error as Error).message}`, 2);
    }
  }
  return { raw: {}, source: "embedded defaults" };
}

/** Sets `raw[path]` to `value`, creating objects on the way; CLI flags win over the file. */
function override(raw: Record<string, unknown>, path: string[], value: unknown): void {
  let node = raw;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== "object" || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]] = value;
}

function cliNumber(flag: string, text: string): number {
  const value = Number(text);
  if (text.trim() === "" || !Number.isInteger(value)) {
    throw new StartupError(`--${flag}: expected an integer, got ${JSON.stringify(text)}`, 2);
  }
  return value;
}

async function loadFromCli(values: CliValues): Promise<Loaded> {
  const { raw, source } = await readRawConfig(values);
  if (typeof raw === "object" && raw !== null && !Array.isArray(raw)) {
    const record = raw as Record<string, unknown>;
    if (values.host !== undefined) override(record, ["server", "host"], values.host);
    if (values.port !== undefined) {
      override(record, ["server", "port"], cliNumber("port", values.port));
    }
    if (values.adapter !== undefined) override(record, ["pubsub", "adapter"], values.adapter);
    if (values["redis-url"] !== undefined) {
      override(record, ["pubsub", "redis", "url"], values["redis-url"]);
    }
    if (values["log-level"] !== undefined) {
      override(record, ["log", "level"], values["log-level"]);
    }
    if (values.transport !== undefined) {
      override(record, ["server", "transport"], values.transport);
    }
  }
  try {
    return { config: loadConfig(raw, (name) => Deno.env.get(name)), source };
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new StartupError(`${source}: ${error.message}`, 2);
  }
}

function parseWorkers(text: string | undefined): number {
  if (text === undefined) return 1;
  const count = cliNumber("workers", text);
  if (count < 1 || count > 64) {
    throw new StartupError(`--workers: expected 1 to 64, got ${count}`, 2);
  }
  return count;
}

/** Resolves with the first SIGINT or SIGTERM. */
function stopSignal(): Promise<string> {
  const { promise, resolve } = Promise.withResolvers<string>();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => resolve(signal));
  }
  return promise;
}

async function runOne(config: SharkConfig): Promise<number> {
  const { shark, server, log, metrics } = await serve(config);
  const metricsServer = serveMetrics(
    config,
    () => {
      const usage = Deno.memoryUsage();
      return metrics() + isolateMemoryMetrics(usage) + processMemoryMetrics(usage);
    },
  );
  const signal = await stopSignal();
  log.info("{signal} received: shutting down", { signal });
  await shark.shutdown();
  await Promise.all([server.shutdown(), metricsServer?.shutdown()]);
  return 0;
}

async function runWorkers(config: SharkConfig, count: number): Promise<number> {
  const log = getLogger(["shark"]);
  const { promise: crashed, resolve: crash } = Promise.withResolvers<string>();
  const { pool, port } = await WorkerPool.start(
    config,
    count,
    (index, error) => crash(`worker ${index} crashed: ${error}`),
  );
  log.info("{count} workers listening on port {port}", { count, port });
  const metricsServer = serveMetrics(
    config,
    async () => await pool.metrics() + processMemoryMetrics(),
  );
  const reason = await Promise.race([stopSignal(), crashed]);
  log.info("{reason}: shutting down", { reason });
  await pool.shutdown((config.server.shutdown_timeout + 5) * 1000);
  await metricsServer?.shutdown();
  return reason.startsWith("SIG") ? 0 : 1;
}

async function run(args: string[]): Promise<number> {
  const values = parseCli(args);
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (values.version) {
    console.log(`shark ${denoJson.version} (deno ${Deno.version.deno})`);
    return 0;
  }
  const workers = parseWorkers(values.workers);
  const { config, source } = await loadFromCli(values);
  if (workers > 1 && config.pubsub.adapter === "memory") {
    throw new StartupError(
      "--workers needs an adapter that crosses isolates: set pubsub.adapter to broadcast_channel or redis (memory reaches one isolate only)",
      2,
    );
  }
  if (values.check) {
    console.log(`${source}: configuration is valid`);
    return 0;
  }
  await setUpLogging(config);
  const log = getLogger(["shark"]);
  log.info(
    source === "embedded defaults"
      ? "Shark {version} starting on embedded defaults (memory adapter, no services): pass --config shark.json"
      : "Shark {version} starting with configuration from {source}",
    { version: denoJson.version, source, adapter: config.pubsub.adapter, workers },
  );
  if (source === "embedded defaults") log.info(NEXT_STEPS);
  return workers > 1 ? await runWorkers(config, workers) : await runOne(config);
}

if (import.meta.main) {
  let code: number;
  try {
    code = await run(Deno.args);
  } catch (error) {
    if (!(error instanceof StartupError)) throw error;
    console.error(`shark: ${error.message}`);
    code = error.exitCode;
  }
  await dispose();
  Deno.exit(code);
}
