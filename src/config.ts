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
import type { SharkConfig } from "./config_types.ts";
import { redactUrl } from "./redact.ts";
import { redisUrlProblem } from "./redis_url.ts";

export type * from "./config_types.ts";

/** Looks up an environment variable for `{"env": "NAME"}` secrets. */
export type EnvLookup = (name: string) => string | undefined;

/** Raised for a configuration that cannot be used; `problems` name key paths. */
export class ConfigError extends Error {
  /** One line per problem, each starting with the key path. */
  readonly problems: readonly string[];

  /**
   * @example
   * ```ts
   * throw new ConfigError(["server.port: expected a number"]);
   * ```
   */
  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n  ${problems.join("\n  ")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

const seconds = z.number().min(0);
const positiveSeconds = z.number().gt(0);
const fieldList = z.array(z.string().min(1));

function checkHttpUrl(text: string): string | undefined {
  const url = URL.parse(text);
  if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) {
    return `expected an http:// or https:// URL, got ${JSON.stringify(redactUrl(text))}`;
  }
}

/** The database number is left to the adapter, which names the URL in its error. */
function checkRedisUrl(text: string): string | undefined {
  const problem = redisUrlProblem(text, { database: false });
  if (problem) return `${problem}, got ${JSON.stringify(redactUrl(text))}`;
}

/**
 * A string that may instead be given as `{"env": "NAME"}`; resolved while
 * parsing so that the rest of Shark only ever sees strings.
 */
function secret(env: EnvLookup, check?: (text: string) => string | undefined) {
  const fromEnv = z.strictObject({
    env: z.string().min(1).describe("The environment variable holding the value."),
  });
  return z.union([z.string(), fromEnv], {
    error: 'expected a string or {"env": "NAME"}',
  }).transform((value, ctx) => {
    const text = typeof value === "string" ? value : env(value.env);
    if (text === undefined) {
      const name = (value as { env: string }).env;
      ctx.addIssue({ code: "custom", message: `environment variable ${name} is not set` });
      return z.NEVER;
    }
    const problem = check?.(text);
    if (problem) {
      ctx.addIssue({ code: "custom", message: problem });
      return z.NEVER;
    }
    return text;
  });
}

function redisSchema(env: EnvLookup) {
  return z.strictObject({
    url: secret(env, checkRedisUrl).default("redis://127.0.0.1:6379/0")
      .describe("redis:// or rediss:// URL, with optional credentials and database number."),
    ping_interval: positiveSeconds.default(10).describe("Seconds between health pings."),
    ping_timeout: positiveSeconds.default(5)
      .describe("Seconds a ping may take before the server counts as lost."),
  });
}

function serviceSchema(env: EnvLookup) {
  const callback = secret(env, checkHttpUrl).nullable().default(null);
  return z.strictObject({
    require_authentication: z.boolean().default(true)
      .describe("Subscribing needs a successful auth event first."),
    authorizer: callback.describe(
      "URL that authorizes each subscribe and renewal; null authorizes everything.",
    ),
    authorizer_fields: fieldList.default([]).describe(
      "Keys of the authorizer's reply kept and sent with every later callback of the subscription.",
    ),
    authorization_renewal_period: positiveSeconds.nullable().default(null)
      .describe("Seconds between re-authorizations of a subscription; null: never."),
    authorization_renewal_jitter: seconds.default(0)
      .describe("Up to this many seconds are taken off each renewal period at random."),
    extra_fields: fieldList.default([]).describe(
      "Keys of the subscribe request kept with the subscription, sent with its callbacks and echoed in its messages.",
    ),
    filter_fields: fieldList.default([]).describe(
      "Envelope keys a message must match to be delivered: one of extra_fields against the subscription's value, any other against the session's auth info.",
    ),
    before_subscribe: callback.describe(
      "URL called before a subscription is confirmed; an error reply refuses it, options.order seeds the order.",
    ),
    on_subscribe: callback.describe("URL called once a subscription is confirmed."),
    on_message: callback.describe("URL the client's message events are sent to."),
    before_unsubscribe: callback.describe("URL called before a subscription ends."),
    on_unsubscribe: callback.describe("URL called after a subscription ended."),
    on_authorization_change: callback.describe(
      "URL called when a renewal returns other authorizer fields than the last one.",
    ),
    heartbeat_period: positiveSeconds.nullable().default(null)
      .describe("Seconds between on_heartbeat calls of a subscription; null: none."),
    on_heartbeat: callback.describe("URL called every heartbeat_period seconds per subscription."),
    history: z.strictObject({
      size: z.int().min(1).max(10000).describe("Envelopes kept per topic (1-10000)."),
      ttl: positiveSeconds.describe("Seconds a topic's history lives after its last publish."),
    }).nullable().default(null).describe(
      "Keep each topic's last envelopes: messages carry offset and epoch, clients may recover; null: off.",
    ),
  }).superRefine((service, ctx) => {
    const contradiction = (path: string, message: string) =>
      ctx.addIssue({ code: "custom", path: [path], message });
    if (service.authorization_renewal_period !== null && !service.authorizer) {
      contradiction("authorization_renewal_period", "needs an authorizer to call");
    }
    if (
      service.authorization_renewal_period !== null &&
      service.authorization_renewal_jitter >= service.authorization_renewal_period
    ) {
      contradiction("authorization_renewal_jitter", "must be less than the renewal period");
    }
    if (service.authorizer_fields.length > 0 && !service.authorizer) {
      contradiction("authorizer_fields", "needs an authorizer to return them");
    }
    if (service.on_authorization_change && service.authorization_renewal_period === null) {
      contradiction("on_authorization_change", "is only called with authorization_renewal_period");
    }
    if ((service.heartbeat_period === null) !== !service.on_heartbeat) {
      contradiction(
        service.on_heartbeat ? "heartbeat_period" : "on_heartbeat",
        "heartbeat_period and on_heartbeat must be set together",
      );
    }
  }).describe("A service: its callbacks and delivery rules.");
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
      max_message_bytes: z.int().min(64).default(65536)
        .describe("A larger client frame closes the connection with 1009."),
      max_buffered_bytes: z.int().min(1024).default(4194304)
        .describe("A client with more unsent output is closed with 1008."),
      handshake_timeout: positiveSeconds.default(10)
        .describe("Seconds to send a whole HTTP request or upgrade, else the connection closes."),
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
      redis_alt: redisSchema(env).extend({
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
    }).prefault({}).describe("How published envelopes reach this process."),
    http: z.strictObject({
      timeout: positiveSeconds.default(15).describe("Seconds per try."),
      tries: z.int().min(1).max(100).default(3)
        .describe('Tries before a callback fails with "Service unavailable."'),
      wait: seconds.default(3).describe("Seconds between tries."),
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
    }).prefault({}).describe("Authentication methods of the auth event; {} configures none."),
    services: z.record(
      z.string().regex(/^[^.]+$/, "a service name must be non-empty and contain no '.'"),
      serviceSchema(env),
    ).default({}).describe("Services by name: the part of a subscription before the first '.'."),
    delivery: z.strictObject({
      metadata: z.boolean().default(true)
        .describe("Whether messages carry published_at, received_at, sent_at and queue_size."),
    }).prefault({}).describe("What published messages carry."),
    publish_api: z.strictObject({
      secret: secret(env).nullable().default(null)
        .describe("Bearer secret of POST /publish; null disables the endpoint."),
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
  });
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
  const result = configSchema(env).safeParse(input ?? {});
  if (!result.success) throw new ConfigError(result.error.issues.flatMap(describeIssue));
  return result.data;
}

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
    description: "See SPEC section 6. Every key is optional; defaults are filled in at start.",
  };
}
