/**
 * The Shark engine: accepts WebSocket sessions (plain HTTP requests go to
 * `http.ts`), wires sessions, events, services, the hub and the pub/sub
 * adapter together, and runs start-up, pub/sub loss and graceful shutdown
 * (SPEC sections 3, 5, 7). Web-standard APIs only: the WebSocket upgrade is
 * injected, so the engine runs in any isolate that can upgrade a `Request`,
 * on any transport whose sockets satisfy `Socket`.
 *
 * @module
 */
import { getLogger, type Logger } from "@logtape/logtape";
import { Admission, type MemoryUsage } from "./http/admission.ts";
import { Callbacks } from "./callbacks/callbacks.ts";
import type { CallbackHttp } from "./callbacks/callback_http.ts";
import { type Clock, delay, REAL_CLOCK } from "./clock.ts";
import {
  type EnvLookup,
  loadConfig,
  type SharkConfig,
  type SharkConfigInput,
} from "./config/config.ts";
import { EventHandler } from "./session/events.ts";
import { errorResponse, type HealthReport, type HttpHost, serveHttp } from "./http/http.ts";
import { Hub } from "./delivery/hub.ts";
import { IdleSweep } from "./session/idle.ts";
import { Lifecycle } from "./session/lifecycle.ts";
import { Metrics } from "./metrics/metrics.ts";
import { CloseReason, HttpErrorText } from "./protocol.ts";
import { Publisher } from "./delivery/publisher.ts";
import type { PubSub } from "./pubsub/pubsub.ts";
import { ServiceClient } from "./callbacks/service_client.ts";
import { type ClientFrame, Session, type SessionHost } from "./session/session.ts";
import { idleTimeoutOf, type UpgradeWebSocket } from "./socket.ts";

/** What an {@link Engine} is built from besides its configuration. */
export interface EngineOptions {
  /** The pub/sub adapter carrying published envelopes. */
  readonly pubsub: PubSub;
  /** The runtime's WebSocket upgrade. */
  readonly upgradeWebSocket: UpgradeWebSocket;
  /** Resolves `{"env": "NAME"}` secrets in the configuration. */
  readonly env?: EnvLookup;
  /** The logger to use; defaults to LogTape's `["shark"]` category. */
  readonly logger?: Logger;
  /** The process's resident memory, for `server.max_memory_bytes`. */
  readonly memoryUsage?: MemoryUsage;
  /**
   * The time the rules read and the timers they set (renewals, heartbeats, throttles,
   * deadlines, fan-out slices, message timestamps); defaults to the runtime's.
   */
  readonly clock?: Clock;
  /** Carries the service callbacks (closed at shutdown); defaults to `fetch`. */
  readonly callbackHttp?: CallbackHttp;
}

/** Connection details of a request, for logs. */
export interface RequestInfo {
  /** The client's address, as `Deno.serve` hands it to its handler. */
  readonly remoteAddr?: { readonly hostname?: string; readonly port?: number };
}

type State = "starting" | "ready" | "degraded" | "failed" | "stopping";

/**
 * A Shark engine. Starts its pub/sub adapter on construction; `started`
 * settles once it is ready (or could not start).
 *
 * @example
 * ```ts
 * const engine = new Engine({ services: {} }, {
 *   pubsub: new MemoryPubSub(),
 *   upgradeWebSocket: (request, options) => Deno.upgradeWebSocket(request, options),
 * });
 * Deno.serve((request) => engine.handle(request));
 * ```
 */
export class Engine {
  /** The validated configuration. */
  readonly config: SharkConfig;
  /** The engine's counters, also served by the Prometheus listener. */
  readonly metrics: Metrics = new Metrics();
  /** The pub/sub adapter. */
  readonly pubsub: PubSub;
  /** Settles when the adapter is connected; rejects when it cannot be. */
  readonly started: Promise<void>;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #upgrade: UpgradeWebSocket;
  readonly #client: ServiceClient;
  readonly #hub: Hub;
  readonly #events: EventHandler;
  readonly #lifecycle: Lifecycle;
  readonly #admission: Admission;
  readonly #publisher: Publisher;
  readonly #idle: IdleSweep | undefined;
  readonly #sessions = new Set<Session>();
  /** Closed sessions whose unsubscribe callbacks still run: shutdown waits for them too. */
  readonly #closing = new Set<Session>();
  readonly #sessionHost: SessionHost;
  readonly #httpHost: HttpHost;
  #state: State = "starting";
  #stopped: Promise<void> | undefined;
  #metricsTimer: ReturnType<typeof setInterval> | undefined;

  constructor(config: SharkConfigInput, options: EngineOptions) {
    this.config = loadConfig(config, options.env);
    this.pubsub = options.pubsub;
    this.#upgrade = options.upgradeWebSocket;
    const log = this.#log = options.logger ?? getLogger(["shark"]);
    const clock = this.#clock = options.clock ?? REAL_CLOCK;
    this.#client = new ServiceClient(this.config.http, this.metrics, log, options.callbackHttp);
    this.#hub = new Hub(this.pubsub, this.metrics, this.#log, {
      metadata: this.config.delivery.metadata,
      maxQueueBytes: this.config.server.max_fanout_queue_bytes,
      clock,
    });
    this.#publisher = new Publisher(this.config, this.pubsub, this.metrics, this.#hub);
    this.#admission = new Admission({
      server: this.config.server,
      metrics: this.metrics,
      log: this.#log,
      memoryUsage: options.memoryUsage,
    });
    const idleTimeout = this.config.server.idle_timeout;
    this.#idle = idleTimeout === null ? undefined : new IdleSweep(idleTimeout, clock);
    const callbacks = new Callbacks(this.#client);
    this.#lifecycle = new Lifecycle(callbacks, this.#hub, this.metrics);
    this.#events = new EventHandler({
      config: this.config,
      client: this.#client,
      callbacks,
      hub: this.#hub,
      lifecycle: this.#lifecycle,
      metrics: this.metrics,
      clock,
    });
    this.#sessionHost = {
      metrics: this.metrics,
      clock,
      limits: {
        maxMessageBytes: this.config.server.max_message_bytes,
        maxBufferedBytes: this.config.server.max_buffered_bytes,
      },
      handleEvent: (session: Session, frame: ClientFrame) => this.#events.handle(session, frame),
      sessionClosed: (session: Session) => this.#sessionClosed(session),
    };
    this.#httpHost = {
      publishSecret: this.config.publish_api.secret,
      log: this.#log,
      health: () => this.#health(),
      publish: (envelopes: unknown) => this.publish(envelopes),
    };
    this.started = this.#start();
    this.started.catch(() => {});
  }

  /** Whether the engine accepts connections: started, pub/sub healthy, not stopping. */
  get ready(): boolean {
    return this.#state === "ready";
  }

  /** Sessions open now. */
  get connections(): number {
    return this.#sessions.size;
  }

  /**
   * Serves one HTTP request: a WebSocket upgrade (any path), `GET /healthz`,
   * `POST /publish`; anything else gets a JSON 404 (426 for `GET /`).
   */
  handle(request: Request, info: RequestInfo = {}): Response | Promise<Response> {
    if (request.headers.get("upgrade")?.toLowerCase() === "websocket") {
      return this.#accept(request, info);
    }
    return serveHttp(request, this.#httpHost);
  }

  /**
   * Publishes one envelope or an array of envelopes through the adapter, as
   * `POST /publish` does. Throws an `InvalidEnvelope` naming the first invalid
   * envelope or a `FanoutQueueFull` while this process cannot fan out more
   * (then nothing is published), or an `Error` saying how many went out when
   * the adapter refused some (it settles once every one has).
   *
   * @returns the number of envelopes published.
   */
  publish(envelopes: unknown): Promise<number> {
    return this.#publisher.publish(envelopes);
  }

  /**
   * Graceful shutdown: refuses new connections, closes every session with
   * 1001, waits for their unsubscribe callbacks (at most
   * `server.shutdown_timeout`), then closes the adapter.
   */
  shutdown(): Promise<void> {
    this.#stopped ??= this.#shutdown();
    return this.#stopped;
  }

  async #start(): Promise<void> {
    const adapter = this.pubsub.name;
    try {
      const keepsHistory = Object.entries(this.config.services)
        .filter(([, service]) => service.history !== null);
      if (keepsHistory.length > 0 && !this.pubsub.history) {
        throw new Error(
          `services.${keepsHistory[0][0]}.history: the ${adapter} adapter keeps no history`,
        );
      }
      await this.pubsub.start({
        message: (topic, payload) => this.#hub.receive(topic, payload),
        health: (healthy, reason) => this.#pubsubHealth(healthy, reason),
      });
      if (keepsHistory.length > 0) {
        await this.pubsub.history!.prepare().catch(async (error) => {
          await this.pubsub.close();
          throw error;
        });
      }
    } catch (error) {
      this.#state = "failed";
      this.#log.fatal("pub/sub adapter {adapter} could not start: {error}", {
        adapter,
        error: error instanceof Error ? error.message : String(error),
      });
      throw error;
    }
    if (this.#state !== "starting") return;
    // An adapter may already have lost its backend again while starting.
    this.#setState(this.pubsub.healthy ? "ready" : "degraded");
    const interval = this.config.metrics.log.interval;
    if (interval !== null) {
      this.#metricsTimer = setInterval(
        () => this.#log.info("metrics", this.metrics.snapshot()),
        interval * 1000,
      );
    }
  }

  #setState(state: State): void {
    this.#state = state;
    this.metrics.ready = state === "ready" ? 1 : 0;
  }

  #pubsubHealth(healthy: boolean, reason?: string): void {
    if (this.#state === "stopping" || this.#state === "failed" || this.#state === "starting") {
      return;
    }
    if (healthy) {
      if (this.#state === "degraded") {
        this.#log.info("pub/sub {adapter} is back: accepting connections", {
          adapter: this.pubsub.name,
        });
        this.#setState("ready");
      }
      return;
    }
    if (this.#state === "degraded") return;
    this.#setState("degraded");
    this.#log.error("pub/sub {adapter} lost ({reason}): closing {count} connections with 1012", {
      adapter: this.pubsub.name,
      reason: reason ?? "unknown",
      count: this.#sessions.size,
    });
    // At once, not after the unsubscribe callbacks: a socket kept open while
    // services that share the lost backend are slow would be a silent stall.
    for (const session of this.#sessions) session.close(CloseReason.pubsubLost);
  }

  #accept(request: Request, info: RequestInfo): Response {
    // Read before the upgrade: the runtime's request info is gone after it.
    const logged = this.#log.isEnabledFor("info");
    const remoteAddr = logged || this.#admission.countsAddresses ? info.remoteAddr : undefined;
    const address = remoteAddr?.hostname;
    const refused = this.#admission.refusal(request, {
      ready: this.ready,
      open: this.#sessions.size,
      address,
    });
    if (refused) return refused;
    const remote = logged && remoteAddr ? `${address}:${remoteAddr.port}` : undefined;
    const origin = logged ? request.headers.get("origin") : undefined;
    let upgraded: ReturnType<UpgradeWebSocket>;
    try {
      upgraded = this.#upgrade(request, { idleTimeout: idleTimeoutOf(this.config.ws_ping) });
    } catch (error) {
      return errorResponse(400, `${HttpErrorText.badUpgrade}: ${error}`);
    }
    const session = new Session(upgraded.socket, this.#sessionHost, this.#log);
    this.#sessions.add(session);
    this.#admission.admit(session, address);
    this.#idle?.watch(session);
    this.metrics.connectionsOpen++;
    this.metrics.connectionsTotal++;
    // The base logger: a per-session logger context is only created when needed.
    if (logged) this.#log.info("connection opened", { session: session.id, remote, origin });
    return upgraded.response;
  }

  async #sessionClosed(session: Session): Promise<void> {
    if (this.#sessions.delete(session)) this.metrics.connectionsOpen--;
    this.#admission.release(session);
    this.#closing.add(session);
    try {
      await Promise.all([session.idle(), this.#lifecycle.endAll(session)]);
    } finally {
      this.#closing.delete(session);
    }
  }

  #health(): HealthReport {
    const ready = this.ready;
    return {
      status: ready ? "ok" : "unavailable",
      state: this.#state,
      adapter: this.pubsub.name,
      pubsub: this.pubsub.healthy ? "ok" : "down",
      connections: this.#sessions.size,
      subscriptions: this.metrics.subscriptionsOpen,
      topics: this.metrics.topicsOpen,
    };
  }

  async #shutdown(): Promise<void> {
    this.#setState("stopping");
    clearInterval(this.#metricsTimer);
    this.#idle?.close();
    this.#events.close();
    this.#log.info("shutting down: closing {count} connections", { count: this.#sessions.size });
    // Sessions closed just before are still ending: their callbacks are awaited too.
    const sessions = [...this.#sessions, ...this.#closing];
    const closed = Promise.all(sessions.map((session) => session.close(CloseReason.shutdown)));
    const limit = new AbortController();
    const timeoutMs = this.config.server.shutdown_timeout * 1000;
    const finished = await Promise.race([
      closed.then(() => true),
      delay(timeoutMs, limit.signal, this.#clock).then(() => false),
    ]);
    limit.abort();
    if (!finished) {
      this.#log.warn("shutdown timeout: unsubscribe callbacks still running were abandoned");
    }
    this.#client.close();
    this.#hub.close();
    await this.pubsub.close();
    this.#log.info("shutdown complete");
  }
}
