/**
 * What `deno task fuzz`, `faults` and `soak` share: a seeded random source,
 * a `redis-server` that can be frozen, killed and restarted, Shark as the
 * real `main.ts` process with its health, metrics and memory read from
 * outside, a WebSocket client that keeps what it receives, and the report
 * (a table on stdout, then one JSON line).
 *
 * Every process started here is stopped on exit, on failure and on Ctrl-C.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import { answersOk, freePort } from "../tests/helpers/loopback.ts";
import { RedisServer } from "../tests/helpers/redis_server.ts";
import { delay, Inbox, waitUntil } from "../tests/helpers/wait.ts";
import { Child, rssKiB } from "./_proc.ts";

export { freePort } from "../tests/helpers/loopback.ts";
export { delay } from "../tests/helpers/wait.ts";

/** The repository root. */
export const ROOT: string = fileURLToPath(new URL("../", import.meta.url));

/** Shark runs on this CPU, everything else (Redis, clients, services) on the other. */
export const SHARK_CPUS = "0";
/** Redis and the helper processes. */
export const HELPER_CPUS = "1";

const MIB = 1024 * 1024;

/** No start waits longer than this. */
const START_TIMEOUT_MS = 30_000;

/** Pins this process, every thread, to the helper CPU: a load generator stays off Shark's core. */
export async function pinToHelperCpu(): Promise<void> {
  await new Deno.Command("taskset", { args: ["-a", "-p", "-c", HELPER_CPUS, String(Deno.pid)] })
    .output();
}

/**
 * `bench/callback_service.ts` (the services' callbacks of `subrate`, `storm`
 * and `bench/ab.ts`) on a free port of the helper CPU, once it answers
 * `GET /stats`. Throws with its last stderr lines when it does not.
 */
export async function startCallbackService(): Promise<{ callbacks: Child; callbackPort: number }> {
  const callbackPort = freePort();
  const callbacks = new Child({
    name: "callback service",
    command: [
      Deno.execPath(),
      "run",
      "-A",
      "bench/callback_service.ts",
      "--port",
      `${callbackPort}`,
    ],
    cpus: HELPER_CPUS,
    cwd: ROOT,
  });
  try {
    await waitUntil(
      () => answersOk(`http://127.0.0.1:${callbackPort}/stats`),
      START_TIMEOUT_MS,
      "callback service answering /stats",
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}:\n${callbacks.tail()}`);
  }
  return { callbacks, callbackPort };
}

/**
 * A seeded pseudo-random source (mulberry32): the same seed gives the same
 * sequence, so a run's inputs can be replayed.
 */
export class Random {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A number in [0, 1). */
  next(): number {
    let t = this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** One of `items`. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  /** `n` random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }

  /** A new source seeded from this one (one per concurrent actor). */
  fork(): Random {
    return new Random(this.int(2 ** 32));
  }
}

/** The value at quantile `q` (0..1) of `values`, `NaN` when empty. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/**
 * The command line of a harness program, parsed with its `options` and the
 * `--transport shark|deno` every one takes (Shark's `server.transport`).
 * `deno task fuzz -- --seconds 300` hands the program the `--` too, which
 * `parseArgs` would take for a positional.
 */
export function harnessArgs<const O extends ParseArgsOptionsConfig, P extends boolean = false>(
  options: O,
  allowPositionals?: P,
) {
  return parseArgs({
    args: Deno.args[0] === "--" ? Deno.args.slice(1) : [...Deno.args],
    allowPositionals,
    options: { transport: { type: "string" }, ...options },
  });
}

/** Progress on stderr, so that stdout stays the report. */
export function log(message: string): void {
  console.error(`[${new Date().toISOString().slice(11, 23)}] ${message}`);
}

/**
 * Whether `test` comes true within `timeoutMs`, tested every `intervalMs`
 * (a harness must not load Shark with its polls while it measures).
 */
export async function becomes(
  test: () => boolean | Promise<boolean>,
  timeoutMs: number,
  intervalMs = 25,
): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await test()) return true;
    if (performance.now() >= deadline) return false;
    await delay(intervalMs);
  }
}

/**
 * A `redis-server` on a free loopback port, pinned to the helper CPU, that
 * does not cut a slow subscriber off: a fault must come from the harness.
 */
export function startRedis(): Promise<RedisServer> {
  return RedisServer.start({
    args: ["--loglevel", "warning", "--client-output-buffer-limit", "pubsub 0 0 0"],
    spawn: (command) => new Child({ name: "redis", command, cpus: HELPER_CPUS }).process,
  });
}

/** Sends `signal` to a running server: SIGSTOP freezes it with its connections held, SIGCONT lets it go on. */
export function signalRedis(redis: RedisServer, signal: "SIGSTOP" | "SIGCONT"): void {
  Deno.kill(redis.pid!, signal);
}

/** Metrics as `name{labels}` → value, from the Prometheus text. */
export type MetricValues = Record<string, number>;

function parseExposition(text: string): MetricValues {
  const values: MetricValues = {};
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    values[line.slice(0, space)] = Number(line.slice(space + 1));
  }
  return values;
}

/** How a {@link SharkProcess} exited. */
export interface Exit {
  readonly code: number;
  readonly signal: string | null;
}

/** How {@link SharkProcess.start} runs Shark besides its configuration. */
export interface SharkStartOptions {
  /** V8 flags for Shark's isolate (`--v8-flags=...`), e.g. `["--trace-gc"]`. */
  readonly v8Flags?: readonly string[];
  /** Whether Shark's stdout (where V8 writes its traces) is kept, in `child.stdout`. */
  readonly stdout?: boolean;
}

/** Shark as `deno run -A main.ts --config FILE`, pinned to {@link SHARK_CPUS}. */
export class SharkProcess {
  readonly port: number;
  readonly metricsPort: number;
  readonly child: Child;
  /** Resolves when the process exits, however. */
  readonly exited: Promise<Exit>;
  #exit: Exit | undefined;

  private constructor(child: Child, port: number, metricsPort: number) {
    this.child = child;
    this.port = port;
    this.metricsPort = metricsPort;
    this.exited = child.status.then((status) =>
      this.#exit = { code: status.code, signal: status.signal }
    );
  }

  /**
   * Writes `config` (its `server.port` and `metrics.prometheus.port` set
   * here, and `server.transport` when `transport` is given) to `directory`
   * and starts Shark; resolves once `/healthz` is 200.
   */
  static async start(
    config: Record<string, unknown>,
    directory: string,
    transport?: string,
    options: SharkStartOptions = {},
  ): Promise<SharkProcess> {
    const port = freePort();
    const metricsPort = freePort();
    const server = {
      ...config.server as object,
      ...(transport ? { transport } : {}),
      host: "127.0.0.1",
      port,
    };
    const metrics = { prometheus: { host: "127.0.0.1", port: metricsPort } };
    const path = `${directory}/shark.json`;
    await Deno.writeTextFile(path, JSON.stringify({ ...config, server, metrics }, null, 2));
    const v8Flags = options.v8Flags?.length ? [`--v8-flags=${options.v8Flags.join(",")}`] : [];
    const child = new Child({
      name: "shark",
      command: [Deno.execPath(), "run", "-A", ...v8Flags, "main.ts", "--config", path],
      cpus: SHARK_CPUS,
      cwd: ROOT,
      stdout: options.stdout,
    });
    const shark = new SharkProcess(child, port, metricsPort);
    const ready = await becomes(
      async () => shark.#exit !== undefined || await shark.healthy(),
      START_TIMEOUT_MS,
      100,
    );
    if (!ready || shark.#exit) {
      child.kill();
      throw new Error(`Shark did not start:\n${child.tail(40)}`);
    }
    return shark;
  }

  /** `ws://127.0.0.1:PORT/`. */
  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/`;
  }

  /** How it exited, once it has. */
  get exit(): Exit | undefined {
    return this.#exit;
  }

  /** Whether `GET /healthz` answers 200 (within a second). */
  async healthy(): Promise<boolean> {
    try {
      const response = await fetch(`http://127.0.0.1:${this.port}/healthz`, {
        signal: AbortSignal.timeout(1000),
      });
      await response.body?.cancel();
      return response.ok;
    } catch {
      return false;
    }
  }

  /** The Prometheus metrics now. */
  async metrics(): Promise<MetricValues> {
    const response = await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`, {
      signal: AbortSignal.timeout(5000),
    });
    return parseExposition(await response.text());
  }

  /** Resident memory now, in MiB. */
  rssMiB(): number {
    return rssKiB(this.child.pid) / 1024;
  }

  /**
   * Shark's V8 heap now, in MiB, as its `/metrics` reports it: in use
   * (live objects and garbage not yet collected), reserved (used and free),
   * and memory held by JS objects outside the heap (`external`).
   */
  async heapMiB(): Promise<{ used: number; total: number; external: number }> {
    const metrics = await this.metrics();
    const mib = (name: string) => (metrics[name] ?? NaN) / MIB;
    return {
      used: mib("deno_heap_used_bytes"),
      total: mib("deno_heap_total_bytes"),
      external: mib("deno_external_memory_bytes"),
    };
  }

  /** Sends SIGTERM; resolves with the exit and the seconds it took (SIGKILL after `graceMs`). */
  async terminate(graceMs = 60_000): Promise<{ exit: Exit; seconds: number }> {
    const started = performance.now();
    try {
      Deno.kill(this.child.pid, "SIGTERM");
    } catch {
      // Already gone.
    }
    const timer = setTimeout(() => this.child.kill(), graceMs);
    const exit = await this.exited;
    clearTimeout(timer);
    return { exit, seconds: (performance.now() - started) / 1000 };
  }
}

/** Published messages start so (Shark's `messageFrameStart`); replies to `message` carry `status` first. */
const PUBLISHED = '{"event":"message","subscription":';

/**
 * A well-behaved WebSocket client (Deno's `WebSocket`): replies queue up for
 * {@link WsClient.request}; published messages go to `onMessage` as text,
 * unparsed, with the `performance.now()` they arrived at.
 */
export class WsClient {
  readonly socket: WebSocket;
  /** Resolves with the close event, whoever closed. */
  readonly closed: Promise<CloseEvent>;
  /** Called for every published message. */
  onMessage: (text: string, at: number) => void = () => {};
  readonly #replies = new Inbox<string>();
  #closeCode: number | undefined;

  private constructor(socket: WebSocket) {
    this.socket = socket;
    this.closed = new Promise((resolve) => {
      socket.addEventListener("close", (event) => {
        this.#closeCode = event.code;
        this.#replies.close();
        resolve(event);
      });
    });
    socket.addEventListener("message", (event) => {
      const text = event.data as string;
      if (text.startsWith(PUBLISHED)) {
        this.onMessage(text, performance.now());
        return;
      }
      this.#replies.push(text);
    });
  }

  /** Opens a connection; rejects when the upgrade fails or takes over `timeoutMs`. */
  static connect(url: string, timeoutMs = 10_000): Promise<WsClient> {
    const socket = new WebSocket(url);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.close();
        reject(new Error(`no connection to ${url} within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.addEventListener("open", () => {
        clearTimeout(timer);
        resolve(new WsClient(socket));
      }, { once: true });
      socket.addEventListener("error", () => {
        clearTimeout(timer);
        reject(new Error(`connection to ${url} failed`));
      }, { once: true });
    });
  }

  /** The close code, once closed. */
  get closeCode(): number | undefined {
    return this.#closeCode;
  }

  /** Sends a JSON value. */
  send(message: unknown): void {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  /** Sends a request and resolves with the next reply (not a published message). */
  async request(message: unknown, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    this.send(message);
    return JSON.parse(await this.#replies.next(timeoutMs));
  }

  /** Closes without waiting. */
  close(): void {
    if (this.socket.readyState <= WebSocket.OPEN) this.socket.close(1000);
  }
}

/** One row of a report: a name and a value. */
export type Figures = Record<string, string | number | boolean | null>;

/** Prints the figures as a table on stdout, then as one JSON line (what tests parse). */
export function report(title: string, figures: Figures): void {
  const width = Math.max(...Object.keys(figures).map((key) => key.length));
  console.log(`\n${title}`);
  for (const [key, value] of Object.entries(figures)) {
    const shown = typeof value === "number" && !Number.isInteger(value)
      ? value.toFixed(3)
      : String(value);
    console.log(`  ${key.padEnd(width)}  ${shown}`);
  }
  console.log(JSON.stringify({ [title]: figures }));
}

/**
 * Runs `main` with a temporary directory and stops every child process
 * afterwards, also on Ctrl-C; exits with `main`'s code (1 when it throws).
 */
export async function runHarness(main: (directory: string) => Promise<number>): Promise<never> {
  // The harness stays off Shark's CPU.
  await new Deno.Command("taskset", { args: ["-a", "-p", "-c", HELPER_CPUS, String(Deno.pid)] })
    .output();
  const directory = await Deno.makeTempDir({ prefix: "shark-harness-" });
  const interrupted = () => {
    Child.killAll();
    Deno.removeSync(directory, { recursive: true });
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", interrupted);
  let code = 1;
  try {
    code = await main(directory);
  } catch (error) {
    console.error(error instanceof Error ? error.stack : error);
  } finally {
    Child.killAll();
    await Promise.all([...Child.running].map((child) => child.status));
    await Deno.remove(directory, { recursive: true });
  }
  Deno.exit(code);
}
