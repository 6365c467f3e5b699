/**
 * The Shark engine: accepts WebSocket sessions (plain HTTP requests go to
 * `http.ts`), wires sessions, events, services, the hub, presence, the
 * server API and the pub/sub adapter together, and runs start-up, pub/sub
 * loss and graceful shutdown (SPEC sections 3, 5, 7, 12 and 13).
 * Web-standard APIs only: the WebSocket upgrade is injected, so the engine
 * runs in any isolate that can upgrade a `Request`, on any transport whose
 * sockets satisfy `Socket`.
 *
 * @module
 */
import { getLogger, type Logger } from "@logtape/logtape";
import type { MemoryUsage } from "./http/admission.ts";
import { Callbacks } from "./callbacks/callbacks.ts";
import type { CallbackHttp } from "./callbacks/callback_http.ts";
import { type Clock, delay, REAL_CLOCK } from "./clock.ts";
import {
  type EnvLookup,
  loadConfig,
  type SharkConfig,
  type SharkConfigInput,
} from "./config/config.ts";
import { type DisconnectOptions, ServerApi, type UnsubscribeOptions } from "./control/control.ts";
import { EventHandler } from "./session/events.ts";
import { type HealthReport, type HttpHost, serveHttp } from "./http/http.ts";
import { Hub } from "./delivery/hub.ts";
import { Lifecycle } from "./session/lifecycle.ts";
import { Metrics } from "./metrics/metrics.ts";
import { Presence, type PresenceSummary } from "./presence/presence.ts";
import { PresenceKeeper } from "./presence/keeper.ts";
import { CloseReason, CONTROL_TOPIC } from "./protocol.ts";
import { Publisher } from "./delivery/publisher.ts";
import type { PubSub } from "./pubsub/pubsub.ts";
import { startPubSub } from "./pubsub/start.ts";
import { type EngineState, PubSubLoss } from "./pubsub/loss.ts";
import { ServiceClient } from "./callbacks/service_client.ts";
import { type RequestInfo, Sessions } from "./session/sessions.ts";
import type { Pressure } from "./session/catch_up_gate.ts";
import type { Gateway, UpgradeRequest, UpgradeWebSocket } from "./socket.ts";

export type { RequestInfo } from "./session/sessions.ts";

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
   * Whether the runtime's I/O is behind now (the CLI probes it with a byte
   * through a Unix socket), for the catch-up gate: new connections wait
   * while a window of sessions is busy, which halves back to
   * `server.catch_up_sessions` while I/O is behind. Without it they never wait.
   */
  readonly pressure?: Pressure;
  /**
   * The time the rules read and the timers they set (renewals, heartbeats, throttles,
   * deadlines, fan-out slices, message timestamps, presence refreshes); defaults to the runtime's.
   */
  readonly clock?: Clock;
  /** Carries the service callbacks (closed at shutdown); defaults to `fetch`. */
  readonly callbackHttp?: CallbackHttp;
}

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
  readonly #client: ServiceClient;
  readonly #hub: Hub;
  readonly #events: EventHandler;
  readonly #publisher: Publisher;
  readonly #sessions: Sessions;
  readonly #keeper: PresenceKeeper;
  readonly #serverApi: ServerApi;
  readonly #httpHost: HttpHost;
  readonly #loss: PubSubLoss;
  #state: EngineState = "starting";
  #stopped: Promise<void> | undefined;
  #metricsTimer: ReturnType<typeof setInterval> | undefined;

  constructor(config: SharkConfigInput, options: EngineOptions) {
    const parsed = this.config = loadConfig(config, options.env);
    const metrics = this.metrics;
    const pubsub = this.pubsub = options.pubsub;
    const log = this.#log = options.logger ?? getLogger(["shark"]);
    const clock = this.#clock = options.clock ?? REAL_CLOCK;
    this.#client = new ServiceClient(parsed.http, metrics, log, options.callbackHttp);
    const hub = this.#hub = new Hub(pubsub, metrics, log, {
      metadata: parsed.delivery.metadata,
      maxQueueBytes: parsed.server.max_fanout_queue_bytes,
      clock,
    });
    this.#publisher = new Publisher(parsed, pubsub, metrics, hub);
    const presence = new Presence(pubsub.presence, metrics, log);
    this.#keeper = new PresenceKeeper(presence, parsed.services, clock);
    const callbacks = new Callbacks(this.#client);
    const lifecycle = new Lifecycle(callbacks, hub, metrics, presence);
    const events = this.#events = new EventHandler({
      config: parsed,
      client: this.#client,
      callbacks,
      hub,
      lifecycle,
      metrics,
      presence,
      clock,
    });
    const sessions = this.#sessions = new Sessions({
      config: parsed,
      metrics,
      log,
      clock,
      upgrade: options.upgradeWebSocket,
      lifecycle,
      memoryUsage: options.memoryUsage,
      pressure: options.pressure,
      handleEvent: (session, frame) => events.handle(session, frame),
    });
    const api = this.#serverApi = new ServerApi({
      config: parsed,
      pubsub,
      presence,
      sessions,
      lifecycle,
      metrics,
      log,
    });
    this.#httpHost = {
      publishSecret: parsed.publish_api.secret,
      log,
      health: () => this.#health(),
      publish: (envelopes: unknown) => this.publish(envelopes),
      serverApi: api,
    };
    this.#loss = new PubSubLoss({
      config: parsed,
      hub,
      sessions,
      log,
      adapter: pubsub.name,
      state: () => this.#state,
      setState: (state) => this.#setState(state),
    });
    this.started = this.#start();
    this.started.catch(() => {});
  }

  readonly #isReady = () => this.ready;

  /**
   * The catch-up gate, for a transport that holds new connections unread
   * until it lets them in (Shark's own does): `enter()` before reading a
   * connection, then `upgrade(request, info, true)`, or `unused()` when it
   * was no upgrade. See `server.catch_up_sessions`.
   */
  get admission(): Gateway {
    return this.#sessions.admission;
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
   * `POST /publish`, the server API (`POST /presence`, `/disconnect`,
   * `/unsubscribe`); anything else gets a JSON 404 (426 for `GET /`).
   */
  handle(request: Request, info: RequestInfo = {}): Response | Promise<Response> {
    if (request.headers.get("upgrade")?.toLowerCase() === "websocket") {
      return this.upgrade(request, info);
    }
    return serveHttp(request, this.#httpHost);
  }

  /**
   * Serves a WebSocket upgrade that a transport has already recognized,
   * given by its header fields alone: Shark's own transport calls this, so
   * that a handshake builds no `Request` (~7 KB of its allocations). The
   * request must be one that this engine's `upgradeWebSocket` knows (the
   * transport's own); any other is answered 400. While the node catches up
   * it first waits its turn at the catch-up gate, unless `admitted` (its
   * transport got a place from {@link admission} before reading it).
   */
  upgrade(
    request: UpgradeRequest,
    info: RequestInfo = {},
    admitted = false,
  ): Response | Promise<Response> {
    return this.#sessions.accept(request, info, this.#isReady, admitted);
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
   * The members of a topic of a service with `presence`, on every node, as
   * `POST /presence` answers (SPEC sections 12 and 13). Throws a
   * `ServerApiError`: 400 for an invalid name, an unknown service or one
   * without presence, 503 when the store cannot be read.
   *
   * @example
   * ```ts
   * const { members, clients, users } = await shark.presence("chat.room_1");
   * ```
   */
  presence(subscription: string): Promise<PresenceSummary> {
    return this.#serverApi.presence({ subscription });
  }

  /**
   * Closes every matching connection on every node, as `POST /disconnect`
   * does (SPEC section 13): its subscriptions end with the usual unsubscribe
   * callbacks, and it closes with 4003 "disconnected", or 4004
   * "disconnected, reconnect" with `reconnect: true`. Resolves once the
   * command is handed to the adapter. Throws a `ServerApiError`: 400 for
   * options that are not exactly one of a non-empty `client` or a non-empty
   * `match`, 503 when the adapter refused the command.
   *
   * @example
   * ```ts
   * await shark.disconnect({ match: { user_id: "u1" } }); // every connection of user u1
   * await shark.disconnect({ client: clientId, reconnect: true });
   * ```
   */
  disconnect(options: DisconnectOptions): Promise<void> {
    return this.#serverApi.disconnect(options);
  }

  /**
   * Ends a subscription of every matching session on every node, as `POST
   * /unsubscribe` does (SPEC section 13): as after a failed re-authorization,
   * with `before_unsubscribe`, `on_unsubscribe` and an `unsubscribe` event
   * carrying the error `Unsubscribed.`. Resolves once the command is handed
   * to the adapter; throws a `ServerApiError` like {@link disconnect}, and
   * 400 for an invalid subscription name or service.
   *
   * @example
   * ```ts
   * await shark.unsubscribe({ subscription: "chat.room_1", match: { user_id: "u1" } });
   * ```
   */
  unsubscribe(options: UnsubscribeOptions): Promise<void> {
    return this.#serverApi.unsubscribe(options);
  }

  /**
   * Graceful shutdown: refuses new connections, closes every session with
   * 1001, waits for their unsubscribe callbacks and the removal of their
   * presence members (at most `server.shutdown_timeout`), then closes the
   * adapter.
   */
  shutdown(): Promise<void> {
    this.#stopped ??= this.#shutdown();
    return this.#stopped;
  }

  async #start(): Promise<void> {
    try {
      await startPubSub(this.config, this.pubsub, {
        message: (topic, payload) =>
          topic === CONTROL_TOPIC
            ? this.#serverApi.receive(payload)
            : this.#hub.receive(topic, payload),
        health: (healthy, reason) => this.#loss.health(healthy, reason),
        lost: (topics, reason) => this.#loss.lost(topics, reason),
        resubscribed: (topics) => this.#loss.resubscribed(topics),
      });
    } catch (error) {
      this.#state = "failed";
      this.#log.fatal("pub/sub adapter {adapter} could not start: {error}", {
        adapter: this.pubsub.name,
        error: error instanceof Error ? error.message : String(error),
      });
      throw error;
    }
    if (this.#state !== "starting") return;
    // An adapter may already have lost its backend again while starting.
    this.#setState(this.pubsub.healthy ? "ready" : "degraded");
    this.#keeper.start();
    const interval = this.config.metrics.log.interval;
    if (interval !== null) {
      this.#metricsTimer = setInterval(
        () => this.#log.info("metrics", this.metrics.snapshot()),
        interval * 1000,
      );
    }
  }

  #setState(state: EngineState): void {
    this.#state = state;
    this.metrics.ready = state === "ready" ? 1 : 0;
  }

  #health(): HealthReport {
    const ready = this.ready;
    return {
      // A Redis Cluster with a shard lost stays ready (SPEC 14) but is not "ok".
      status: ready && this.pubsub.healthy ? "ok" : "unavailable",
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
    this.#sessions.close();
    this.#keeper.close();
    this.#events.close();
    this.#log.info("shutting down: closing {count} connections", { count: this.#sessions.size });
    // Sessions closed just before are still ending: their callbacks are awaited too.
    const closed = this.#sessions.closeAll(CloseReason.shutdown);
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
