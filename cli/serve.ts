/**
 * Serving one Shark engine in this isolate: logging, the pub/sub adapter the
 * configuration names, TLS, `Deno.serve` and the Prometheus listener. Used by
 * `main.ts` directly and by each `--workers` isolate.
 *
 * @module
 */
import { IoProbe } from "./io_probe.ts";
import { configure, getLogger, getStreamSink, type Logger, type LogLevel } from "@logtape/logtape";
import { defaultPubSub, type PubSub, Shark, type SharkConfig } from "../mod.ts";
import { logFormatter } from "./log_format.ts";
import { TransportServer, upgradeWebSocket } from "./transport/server.ts";
import { TransportScheduler } from "./transport/scheduler.ts";
import { transportMetrics } from "./transport_metrics.ts";
import { callbackHttpFor } from "./callbacks/net_http.ts";

/** A start-up problem reported on one line, with the exit code it gets. */
export class StartupError extends Error {
  /** 1 for a start-up failure, 2 for a bad configuration or argument. */
  readonly exitCode: number;

  constructor(message: string, exitCode: number) {
    super(message);
    this.exitCode = exitCode;
  }
}

/** Configures LogTape to write the `shark` category to stderr in the configured format. */
export async function setUpLogging(config: SharkConfig): Promise<void> {
  const formatter = logFormatter(config.log.format);
  await configure({
    sinks: { stderr: getStreamSink(Deno.stderr.writable, { formatter, nonBlocking: true }) },
    loggers: [
      { category: ["shark"], lowestLevel: config.log.level as LogLevel, sinks: ["stderr"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
    ],
  });
}

async function createPubSub(
  config: SharkConfig,
  logContext: Record<string, unknown>,
): Promise<PubSub> {
  if (config.pubsub.adapter !== "redis") return defaultPubSub(config);
  // Loaded only when used: the other adapters never download a Redis client.
  const { RedisClusterPubSub, RedisPubSub } = await import("../adapters/redis.ts");
  const logger = getLogger(["shark", "redis"]).with(logContext);
  return config.pubsub.redis.cluster === null
    ? new RedisPubSub(config.pubsub, { logger })
    : new RedisClusterPubSub(config.pubsub, { logger });
}

async function readTls(config: SharkConfig): Promise<{ cert: string; key: string } | undefined> {
  const tls = config.server.tls;
  if (!tls) return undefined;
  try {
    return { cert: await Deno.readTextFile(tls.cert), key: await Deno.readTextFile(tls.key) };
  } catch (error) {
    throw new StartupError(`server.tls: ${(error as Error).message}`, 2);
  }
}

/** A listener serving the engine: `Deno.serve`'s or the transport's. */
export interface Listening {
  readonly addr: Deno.NetAddr;
  /** Stops accepting and waits for open requests (the engine closes its sessions first). */
  shutdown(): Promise<void>;
}

/** A Shark engine serving on its port. */
export interface Served {
  readonly shark: Shark;
  readonly server: Listening;
  readonly log: Logger;
  /** This isolate's metrics (the engine's and the transport's), in the Prometheus text format. */
  metrics(): string;
}

/** Options of {@link serve}. */
export interface ServeOptions {
  /** Share the port with other isolates (`--workers`). */
  readonly reusePort?: boolean;
  /** Fields added to every log line of this isolate, e.g. `{ worker: 2 }`. */
  readonly logContext?: Record<string, unknown>;
}

/** An engine whose adapter has started, not yet listening. */
export interface Prepared {
  readonly shark: Shark;
  readonly log: Logger;
  /** This isolate's metrics (the engine's and the transport's), in the Prometheus text format. */
  metrics(): string;
  /** Listens on `server.host` and `port` (0 picks a free one). */
  listen(port: number): Promise<Served>;
}

/**
 * Starts the adapter and the engine. Throws a {@link StartupError} when the
 * adapter cannot start (exit 1) or TLS files cannot be read (exit 2).
 */
export async function prepare(config: SharkConfig, options: ServeOptions = {}): Promise<Prepared> {
  const logContext = options.logContext ?? {};
  const log = getLogger(["shark"]).with(logContext);
  const tls = await readTls(config);
  // The transport's writer is chosen (a self-check on loopback) while the adapter starts.
  const scheduling = config.server.transport === "shark"
    ? TransportScheduler.start({
      onUnexpectedCompletion: () =>
        log.error(
          "transport: a write completion arrived that was not waited for; the runtime no longer behaves as the handle writer assumes (counted in shark_transport_unexpected_write_completions_total)",
        ),
    })
    : undefined;
  const pubsub = await createPubSub(config, logContext);
  // How far behind the runtime's I/O is, for the catch-up gate (closed with it).
  const probe = config.server.catch_up_sessions === null
    ? undefined
    : await IoProbe.start().catch((error) => {
      log.warn("catch-up gate off: the I/O probe could not start: {error}", {
        error: String(error),
      });
      return undefined;
    });
  const shark = new Shark(config, {
    pressure: probe,
    pubsub,
    logger: log,
    upgradeWebSocket: config.server.transport === "shark" ? upgradeWebSocket : undefined,
    callbackHttp: callbackHttpFor((name) => Deno.env.get(name)),
  });
  try {
    await shark.started;
  } catch (error) {
    probe?.close();
    throw new StartupError(
      `pub/sub adapter ${config.pubsub.adapter} could not start: ${(error as Error).message}`,
      1,
    );
  }
  const scheduler = await scheduling;
  if (scheduler) {
    log.info("transport writer: {kind} ({why})", { ...scheduler.writer });
  }
  const metrics = () => shark.metrics.prometheus() + (scheduler ? transportMetrics(scheduler) : "");
  const listenOn = async (port: number): Promise<Served> => {
    const server = await listen(shark, {
      scheduler,
      hostname: config.server.host,
      port,
      reusePort: options.reusePort,
      tls,
      onListen: ({ hostname, port }) =>
        log.info("listening on {scheme}://{hostname}:{port}", {
          scheme: tls ? "wss" : "ws",
          hostname,
          port,
          transport: config.server.transport,
        }),
    });
    return { shark, server, log, metrics };
  };
  return { shark, log, metrics, listen: listenOn };
}

/** Starts the adapter and the engine, then listens (see {@link prepare}). */
export async function serve(config: SharkConfig, options: ServeOptions = {}): Promise<Served> {
  return (await prepare(config, options)).listen(config.server.port);
}

/** Where and how {@link listen} listens. */
export interface ListenOptions {
  readonly hostname: string;
  readonly port: number;
  readonly reusePort?: boolean;
  readonly tls?: { readonly cert: string; readonly key: string };
  readonly onListen?: (addr: Deno.NetAddr) => void;
  /** The own transport's shared state; by default the server's own. */
  readonly scheduler?: TransportScheduler;
}

/**
 * Serves `shark` on the listener its `server.transport` names: Shark's own
 * transport (its refusals and the connections it ends counted in the
 * engine's metrics), or `Deno.serve`. A `shark` engine must have been built
 * with this transport's {@link upgradeWebSocket}.
 */
export async function listen(shark: Shark, options: ListenOptions): Promise<Listening> {
  const { hostname, port, reusePort, tls, onListen, scheduler } = options;
  const handler = (request: Request, info: { remoteAddr: Deno.NetAddr }) =>
    shark.handle(request, info);
  if (shark.config.server.transport === "deno") {
    return Deno.serve({ hostname, port, reusePort, ...tls, onListen }, handler);
  }
  return await TransportServer.listen({
    hostname,
    port,
    reusePort,
    tls,
    onListen,
    handshakeTimeout: shark.config.server.handshake_timeout,
    maxMessageBytes: shark.config.server.max_message_bytes,
    onDrop: (reason) => shark.metrics.rejected(reason),
    onFail: (failure) => shark.metrics.closed(failure),
    scheduler,
    upgrade: (request, info, admitted) => shark.upgrade(request, info, admitted),
    admission: shark.admission,
  }, handler);
}

/**
 * Serves `GET /metrics` on `metrics.prometheus` when a port is set.
 * `render` produces the exposition text.
 */
export function serveMetrics(
  config: SharkConfig,
  render: () => string | Promise<string>,
): Deno.HttpServer | undefined {
  const { host, port } = config.metrics.prometheus;
  if (port === null) return undefined;
  const log = getLogger(["shark"]);
  return Deno.serve({
    hostname: host,
    port,
    onListen: ({ hostname, port }) =>
      log.info("metrics on http://{hostname}:{port}/metrics", { hostname, port }),
  }, async (request) => {
    if (new URL(request.url).pathname !== "/metrics") {
      return new Response("Not found.\n", { status: 404 });
    }
    return new Response(await render(), {
      headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
    });
  });
}
