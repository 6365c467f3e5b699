/**
 * Shark: a WebSocket message router for Deno, wire-compatible with
 * SocketShark. Clients hold one WebSocket; services stay plain HTTP.
 *
 * ```ts
 * import { MemoryPubSub, Shark } from "./mod.ts";
 *
 * const shark = new Shark({
 *   services: { books: { require_authentication: false } },
 * }, { pubsub: new MemoryPubSub() });
 * // Port 0 picks a free port (printed); clients connect to ws://127.0.0.1:PORT/.
 * const server = Deno.serve(
 *   { hostname: "127.0.0.1", port: 0 },
 *   (request) => shark.handle(request),
 * );
 * await shark.publish({ subscription: "books.1", data: { title: "Dune" } });
 * // Graceful shutdown (at SIGTERM, say): connections close with 1001, then the listener.
 * await shark.shutdown();
 * await server.shutdown();
 * ```
 *
 * The Redis adapter has its own entry point (`./adapters/redis.ts`, exported
 * as `@shark/shark/redis`) so that programs using the other adapters never
 * load a Redis client.
 *
 * @module
 */
import { BroadcastChannelPubSub } from "./adapters/broadcast_channel.ts";
import { MemoryPubSub } from "./adapters/memory.ts";
import { type EnvLookup, loadConfig, type SharkConfigInput } from "./src/config/config.ts";
import type { MemoryUsage } from "./src/http/admission.ts";
import type { Clock } from "./src/clock.ts";
import type { CallbackHttp } from "./src/callbacks/callback_http.ts";
import { Engine } from "./src/engine.ts";
import type { UpgradeWebSocket } from "./src/socket.ts";
import type { PubSub } from "./src/pubsub/pubsub.ts";
import type { Logger } from "@logtape/logtape";
import type { Pressure } from "./src/session/catch_up_gate.ts";

export {
  type BroadcastChannelOptions,
  BroadcastChannelPubSub,
} from "./adapters/broadcast_channel.ts";
export { MemoryPubSub } from "./adapters/memory.ts";
export { MemoryHistory, type MemoryHistorySettings } from "./adapters/memory_history.ts";
export { MemoryPresence } from "./adapters/memory_presence.ts";
export {
  type CallbackName,
  ConfigError,
  configJsonSchema,
  type EnvLookup,
  type JwtConfig,
  loadConfig,
  type PresenceConfig,
  type ServiceConfig,
  type SharkConfig,
  type SharkConfigInput,
} from "./src/config/config.ts";
export type { MemoryUsage } from "./src/http/admission.ts";
export type { Pressure } from "./src/session/catch_up_gate.ts";
export type { Clock } from "./src/clock.ts";
export type {
  CallbackAnswer,
  CallbackHttp,
  CallbackRequest,
} from "./src/callbacks/callback_http.ts";
export { FetchCallbackHttp } from "./src/callbacks/fetch_http.ts";
export { Engine, type EngineOptions, type RequestInfo } from "./src/engine.ts";
export {
  type DisconnectOptions,
  ServerApiError,
  type SessionTarget,
  type UnsubscribeOptions,
} from "./src/control/control.ts";
export type {
  Member,
  PresenceOptions,
  PresenceStore,
  PresenceSummary,
} from "./src/presence/presence.ts";
export { memberJson, presencePayload } from "./src/presence/presence_payload.ts";
export { InvalidEnvelope, normalizeTimestamp } from "./src/delivery/envelope.ts";
export { FanoutQueueFull } from "./src/delivery/fanout_queue.ts";
export {
  type History,
  type HistoryOptions,
  type Position,
  type Recovery,
  withPosition,
} from "./src/pubsub/history.ts";
export {
  type DropReason,
  type LimitName,
  Metrics,
  type RejectReason,
} from "./src/metrics/metrics.ts";
export {
  ClientEvent,
  CloseReason,
  CONTROL_TOPIC,
  ErrorText,
  HttpErrorText,
  MAX_PUBLISH_BYTES,
  ServerEvent,
} from "./src/protocol.ts";
export type { PubSub, PubSubListener } from "./src/pubsub/pubsub.ts";
export { redactUrl } from "./src/config/redact.ts";
export type { Gateway, Socket, UpgradeRequest, UpgradeWebSocket } from "./src/socket.ts";

/** Options of a {@link Shark}; every one has a Deno default. */
export interface SharkOptions {
  /**
   * The pub/sub adapter. Defaults to the configured `pubsub.adapter` when it
   * is `memory` or `broadcast_channel`; for `redis`, pass a `RedisPubSub`
   * from `./adapters/redis.ts`.
   */
  readonly pubsub?: PubSub;
  /** Defaults to `Deno.upgradeWebSocket`. */
  readonly upgradeWebSocket?: UpgradeWebSocket;
  /** Resolves `{"env": "NAME"}` secrets; defaults to `Deno.env.get`. */
  readonly env?: EnvLookup;
  /** Defaults to LogTape's `["shark"]` category; configure LogTape to see it. */
  readonly logger?: Logger;
  /** For `server.max_memory_bytes`; defaults to `Deno.memoryUsage().rss`. */
  readonly memoryUsage?: MemoryUsage;
  /** The time the rules read and the timers they set; defaults to the runtime's. */
  readonly clock?: Clock;
  /** Carries the service callbacks; defaults to `fetch`. */
  readonly callbackHttp?: CallbackHttp;
  /**
   * Whether the runtime's I/O is behind now, for the catch-up gate
   * (`server.catch_up_sessions`, docs/storms.md; the CLI probes it with
   * `cli/io_probe.ts`). Without it new connections never wait.
   */
  readonly pressure?: Pressure;
}

/**
 * Picks the adapter a configuration names, for the adapters that need no
 * extra import.
 *
 * @example
 * ```ts
 * const pubsub = defaultPubSub(loadConfig({ pubsub: { adapter: "broadcast_channel" } }));
 * ```
 */
export function defaultPubSub(config: ReturnType<typeof loadConfig>): PubSub {
  switch (config.pubsub.adapter) {
    case "memory":
      return new MemoryPubSub();
    case "broadcast_channel":
      return new BroadcastChannelPubSub({ name: config.pubsub.broadcast_channel.name });
    case "redis":
      throw new Error(
        'pubsub.adapter "redis": pass options.pubsub = new RedisPubSub(config.pubsub) from ./adapters/redis.ts',
      );
  }
}

/**
 * The Shark engine bound to Deno: `Deno.upgradeWebSocket` for upgrades,
 * `Deno.env` for secrets and `Deno.memoryUsage` for the memory guard.
 *
 * @example
 * ```ts
 * const shark = new Shark({ services: { books: { require_authentication: false } } });
 * await shark.started;
 * const health = await shark.handle(new Request("http://127.0.0.1:9000/healthz"));
 * console.log(health.status, await health.json()); // 200 { status: "ok", ... }
 * await shark.shutdown();
 * ```
 */
export class Shark extends Engine {
  constructor(config: SharkConfigInput = {}, options: SharkOptions = {}) {
    const env = options.env ?? ((name: string) => Deno.env.get(name));
    super(config, {
      pubsub: options.pubsub ?? defaultPubSub(loadConfig(config, env)),
      upgradeWebSocket: options.upgradeWebSocket ??
        ((request, upgrade) => Deno.upgradeWebSocket(request, upgrade)),
      env,
      logger: options.logger,
      memoryUsage: options.memoryUsage ?? (() => Deno.memoryUsage().rss),
      clock: options.clock,
      callbackHttp: options.callbackHttp,
      pressure: options.pressure,
    });
  }
}
