/**
 * The `shark.json` contract (SPEC section 6): one zod schema declares every
 * key with its default and its meaning, and gives the validation with key
 * paths and the JSON Schema shipped as `shark.schema.json` (where editors
 * show each key's meaning and default). The schema is the one place where
 * keys are explained; the explicit types of `config_types.ts` only name them.
 *
 * @module
 */
import { z } from "zod";
import {
  checkHttpUrl,
  checkPublishSecret,
  type EnvLookup,
  fieldList,
  MIN_PUBLISH_SECRET,
  positiveSeconds,
  seconds,
  secret,
} from "./fields.ts";
import { jwtSchema } from "./jwt.ts";
import { redisSchema, redisServerSchema } from "./redis.ts";
import { checkPresence, withPresenceDefaults } from "./presence.ts";
import { serviceSchema } from "./service.ts";
import type { SharkConfig } from "./types.ts";

export type * from "./types.ts";
export type { EnvLookup } from "./fields.ts";

/** Raised for a configuration that cannot be used; `problems` name key paths. */
export class ConfigError extends Error {
  /** One line per problem, each starting with the key path. */
  readonly problems: readonly string[];

  /**
   * @example
   * ```ts
   * const error = new ConfigError(["server.port: expected a number"]);
   * console.log(error.message); // invalid configuration:\n  server.port: expected a number
   * ```
   */
  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n  ${problems.join("\n  ")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/**
 * Builds the configuration schema; `env` resolves `{"env": "NAME"}` secrets.
 *
 * @example
 * ```ts
 * const schema = configSchema((name) => Deno.env.get(name));
 * const config = schema.parse({ server: { port: 9100 } });
 * ```
 */
export function configSchema(env: EnvLookup): z.ZodType<SharkConfig, unknown> {
  return z.strictObject({
    $schema: z.string().optional().describe("The JSON Schema of this file, for editors; ignored."),
    server: z.strictObject({
      host: z.string().min(1).default("127.0.0.1").describe("Address to listen on."),
      port: z.int().min(0).max(65535).default(9000)
        .describe("Port to listen on; 0 picks a free one."),
      tls: z.strictObject({
        cert: z.string().min(1).describe("Path of the PEM certificate chain."),
        key: z.string().min(1).describe("Path of the PEM private key."),
      }).nullable().default(null).describe("PEM files to serve wss://; null serves plain ws://."),
      allowed_origins: z.array(z.string().min(1)).nullable().default(null).describe(
        "Browser origins allowed to connect; others get 403 at the upgrade. null allows any.",
      ),
      max_connections: z.int().min(1).nullable().default(null)
        .describe("Upgrades beyond this many open connections get 503; null: no limit."),
      max_connections_per_address: z.int().min(1).nullable().default(null).describe(
        "Upgrades from a client address that already holds this many connections get 429; null: no limit.",
      ),
      max_memory_bytes: z.int().min(1048576).nullable().default(null).describe(
        "Upgrades get 503 while the process's resident memory (RSS) is above this many bytes; null: no guard.",
      ),
      max_message_bytes: z.int().min(64).default(65536)
        .describe("A larger client frame closes the connection with 1009."),
      max_subscriptions: z.int().min(1).default(1000).describe(
        'Subscriptions one connection may hold; the next subscribe gets "Too many subscriptions."',
      ),
      idle_timeout: positiveSeconds.nullable().default(null).describe(
        "Seconds after its upgrade a connection that has not authenticated and holds no subscription is closed with 4008; null: never.",
      ),
      max_fanout_queue_bytes: z.int().min(65536).default(16777216).describe(
        "Bytes of envelope JSON waiting to be fanned out; at this size POST /publish gets 503 and envelopes from pub/sub are dropped.",
      ),
      max_buffered_bytes: z.int().min(1024).default(4194304)
        .describe("A client with more unsent output is closed with 1008."),
      handshake_timeout: positiveSeconds.default(10)
        .describe("Seconds to send a whole HTTP request or upgrade, else the connection closes."),
      catch_up_sessions: z.int().min(1).nullable().default(128).describe(
        "New connections wait unread (never refused, at most handshake_timeout) while a window of sessions is busy connecting, authenticating or subscribing: the window starts at this many, grows while the runtime's I/O keeps up and halves back to it while I/O is behind (a reconnect storm). null: connections never wait.",
      ),
      shutdown_timeout: seconds.default(30)
        .describe("Seconds graceful shutdown waits for unsubscribe callbacks."),
      transport: z.enum(["shark", "deno"]).default("shark").describe(
        "The CLI's listener: shark (its own RFC 6455 server) or deno (Deno.serve, Deno.upgradeWebSocket).",
      ),
    }).prefault({}).describe("The WebSocket listener clients connect to."),
    ws_ping: z.strictObject({
      interval: seconds.default(15)
        .describe("Seconds between WebSocket pings to each client; 0 sends none."),
      timeout: seconds.default(15)
        .describe("Seconds to wait for the pong before the connection is closed."),
    }).prefault({}).describe("Keep-alive of client connections."),
    pubsub: z.strictObject({
      adapter: z.enum(["memory", "broadcast_channel", "redis"]).default("memory").describe(
        "memory: one process; broadcast_channel: the isolates of one deployment; redis: any number of nodes, SocketShark-compatible publishing.",
      ),
      channel_prefix: z.string().default("")
        .describe("Put before a subscription name to make its Redis channel name."),
      redis: redisSchema(env).prefault({}).describe("The Redis server of the redis adapter."),
      redis_alt: redisServerSchema(env).extend({
        channel_prefix: z.string().default("").describe("channel_prefix on this server."),
      }).nullable().default(null).describe(
        "A second Redis subscribed in parallel, with its own channel_prefix (migrations); publishing goes to redis only. null: none.",
      ),
      broadcast_channel: z.strictObject({
        name: z.string().min(1).default("shark")
          .describe("The channel name shared by the isolates of one deployment."),
      }).prefault({}).describe("The BroadcastChannel of the broadcast_channel adapter."),
    }).superRefine((pubsub, ctx) => {
      if (pubsub.redis_alt && pubsub.adapter !== "redis") {
        ctx.addIssue({
          code: "custom",
          path: ["redis_alt"],
          message: `is only used with the redis adapter, not ${pubsub.adapter}`,
        });
      }
      if (pubsub.redis_alt && pubsub.redis.cluster !== null) {
        ctx.addIssue({
          code: "custom",
          path: ["redis_alt"],
          message:
            "redis_alt and redis.cluster are both written: redis_alt is for a single Redis, not a Redis Cluster",
        });
      }
    }).prefault({}).describe("How published envelopes reach this process."),
    http: z.strictObject({
      timeout: positiveSeconds.default(15).describe("Seconds per try."),
      tries: z.int().min(1).max(100).default(3)
        .describe('Tries before a callback fails with "Service unavailable."'),
      wait: seconds.default(3).describe("Seconds between tries."),
      max_concurrent: z.int().min(1).default(64).describe(
        "Callbacks in flight at once to one origin (scheme, host, port); more wait their turn, in order.",
      ),
      rate_limit_reset_header_names: z.array(z.string().min(1)).default(["X-Rate-Limit-Reset"])
        .describe("Headers giving a 429 reply's wait in seconds; the first present wins."),
    }).prefault({}).describe("The transport of service callbacks."),
    authentication: z.strictObject({
      ticket: z.strictObject({
        validation_url: secret(env, checkHttpUrl)
          .describe("URL a client's ticket is sent to for validation."),
        auth_fields: fieldList.default([])
          .describe("Keys of the validation reply kept as the session's auth info."),
      }).optional().describe("Ticket authentication (the auth event's method ticket)."),
      jwt: jwtSchema(env).nullable().optional()
        .describe("JWT authentication (the auth event's method jwt); null: not configured."),
    }).prefault({}).describe("Authentication methods of the auth event; {} configures none."),
    services: z.record(
      z.string().regex(/^[^.]+$/, "a service name must be non-empty and contain no '.'"),
      serviceSchema(env),
    ).default({}).describe("Services by name: the part of a subscription before the first '.'."),
    delivery: z.strictObject({
      metadata: z.boolean().default(true)
        .describe("Whether messages carry published_at, received_at, sent_at and queue_size."),
      max_keys_per_subscription: z.int().min(1).default(1000).describe(
        "order_key and throttle_key values each rule remembers per subscription; beyond it the least recently used is forgotten.",
      ),
    }).prefault({}).describe("What published messages carry."),
    publish_api: z.strictObject({
      secret: secret(env, checkPublishSecret).nullable().default(null)
        .describe(
          `Bearer secret of POST /publish, at least ${MIN_PUBLISH_SECRET} characters; null disables the endpoint.`,
        ),
    }).prefault({}).describe("The HTTP publish endpoint."),
    metrics: z.strictObject({
      prometheus: z.strictObject({
        host: z.string().min(1).default("127.0.0.1").describe("Address of the metrics listener."),
        port: z.int().min(0).max(65535).nullable().default(null)
          .describe("Port of the metrics listener; null: no listener."),
      }).prefault({}).describe("The Prometheus /metrics listener."),
      log: z.strictObject({
        interval: positiveSeconds.nullable().default(null)
          .describe("Seconds between metrics log lines; null: none."),
      }).prefault({}).describe("Metrics written to the log."),
    }).prefault({}).describe("Where metrics are exposed."),
    log: z.strictObject({
      level: z.enum(["trace", "debug", "info", "warning", "error", "fatal"]).default("info")
        .describe("The lowest level logged."),
      format: z.enum(["json", "text"]).default("json")
        .describe("json: one JSON object per line; text: readable lines."),
    }).prefault({}).describe("Shark's own log."),
  }).superRefine((config, ctx) => {
    for (const [name, service] of Object.entries(config.services)) {
      if (service.history === null || config.pubsub.adapter !== "broadcast_channel") continue;
      const message = "is not available with the broadcast_channel adapter (no shared store)";
      ctx.addIssue({ code: "custom", path: ["services", name, "history"], message });
    }
    const prometheus = config.metrics.prometheus;
    if (
      prometheus.port !== null && prometheus.port !== 0 && prometheus.port === config.server.port
    ) {
      ctx.addIssue({
        code: "custom",
        path: ["metrics", "prometheus", "port"],
        message: `must differ from server.port (${config.server.port})`,
      });
    }
    checkPresence(config, ctx);
  }).transform(withPresenceDefaults);
}

function keyPath(path: readonly PropertyKey[]): string {
  return path.map((key, index) => {
    const text = String(key);
    if (/^[\w-]+$/.test(text)) return index === 0 ? text : `.${text}`;
    return `[${JSON.stringify(text)}]`;
  }).join("");
}

function describeIssue(issue: z.core.$ZodIssue): string[] {
  const path = keyPath(issue.path);
  if (issue.code === "unrecognized_keys") {
    return issue.keys.map((key) => `${keyPath([...issue.path, key])}: unknown key`);
  }
  if (issue.code === "invalid_key") {
    return [`${path}: ${issue.issues.map((inner) => inner.message).join("; ")}`];
  }
  return [`${path || "(top level)"}: ${issue.message}`];
}

/**
 * Validates a configuration object, fills in defaults and resolves secrets.
 * Throws a {@link ConfigError} naming every bad key path.
 *
 * @example
 * ```ts
 * const config = loadConfig({ services: { books: { require_authentication: false } } });
 * console.log(config.server.port); // 9000
 * ```
 */
export function loadConfig(input: unknown, env: EnvLookup = () => undefined): SharkConfig {
  // A configuration this function returned is taken as it is: validated again,
  // the defaults it filled in would read as keys written (presence.user_field).
  if (typeof input === "object" && input !== null && loaded.has(input)) return input as SharkConfig;
  const result = configSchema(env).safeParse(input ?? {});
  if (!result.success) throw new ConfigError(result.error.issues.flatMap(describeIssue));
  loaded.add(result.data);
  return result.data;
}

/** The configurations {@link loadConfig} returned. */
const loaded = new WeakSet<object>();

/**
 * The JSON Schema of `shark.json`, generated from the same zod schema.
 *
 * @example
 * ```ts
 * const schema = configJsonSchema();
 * ```
 */
export function configJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(configSchema(() => undefined), {
    io: "input",
    // zod leaves out the default of a key whose value is transformed (the
    // secrets and URLs); their defaults are valid input, so they are shown too.
    override({ zodSchema, jsonSchema }) {
      const def = zodSchema._zod.def;
      if (def.type === "default" && jsonSchema.default === undefined) {
        jsonSchema.default = (def as z.core.$ZodDefaultDef).defaultValue;
      }
    },
  });
  return {
    ...schema,
    title: "Shark configuration (shark.json)",
    description:
      "Every key is optional; defaults are filled in at start. See the README's Configuration section.",
  };
}
