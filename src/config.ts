/**
 * The `shark.json` contract (SPEC section 6): one zod schema gives the
 * defaults, the validation with key paths, the resolved types and the JSON
 * Schema shipped as `shark.schema.json`.
 *
 * @module
 */
import { z } from "zod";
import type { HistoryOptions } from "./history.ts";

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

function checkRedisUrl(text: string): string | undefined {
  const url = URL.parse(text);
  if (!url || (url.protocol !== "redis:" && url.protocol !== "rediss:")) {
    return `expected a redis:// or rediss:// URL, got ${JSON.stringify(redactUrl(text))}`;
  }
}

/** Hides the password of a URL so that it can be written to logs and errors. */
export function redactUrl(text: string): string {
  const url = URL.parse(text);
  if (!url || (!url.password && !url.username)) return text;
  url.username = url.username ? "*****" : "";
  url.password = url.password ? "*****" : "";
  return url.href;
}

/**
 * A string that may instead be given as `{"env": "NAME"}`; resolved while
 * parsing so that the rest of Shark only ever sees strings.
 */
function secret(env: EnvLookup, check?: (text: string) => string | undefined) {
  return z.union([z.string(), z.strictObject({ env: z.string().min(1) })], {
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
    url: secret(env, checkRedisUrl).default("redis://127.0.0.1:6379/0"),
    ping_interval: positiveSeconds.default(10),
    ping_timeout: positiveSeconds.default(5),
  });
}

function serviceSchema(env: EnvLookup) {
  const callback = secret(env, checkHttpUrl).nullable().default(null);
  return z.strictObject({
    require_authentication: z.boolean().default(true),
    authorizer: callback,
    authorizer_fields: fieldList.default([]),
    authorization_renewal_period: positiveSeconds.nullable().default(null),
    authorization_renewal_jitter: seconds.default(0),
    extra_fields: fieldList.default([]),
    filter_fields: fieldList.default([]),
    before_subscribe: callback,
    on_subscribe: callback,
    on_message: callback,
    before_unsubscribe: callback,
    on_unsubscribe: callback,
    on_authorization_change: callback,
    heartbeat_period: positiveSeconds.nullable().default(null),
    on_heartbeat: callback,
    history: z.strictObject({
      size: z.int().min(1).max(10000),
      ttl: positiveSeconds,
    }).nullable().default(null),
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
  });
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
    /** Lets editors find `shark.schema.json`; ignored by Shark. */
    $schema: z.string().optional(),
    server: z.strictObject({
      host: z.string().min(1).default("127.0.0.1"),
      port: z.int().min(0).max(65535).default(9000),
      tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1) }).nullable()
        .default(null),
      allowed_origins: z.array(z.string().min(1)).nullable().default(null),
      max_connections: z.int().min(1).nullable().default(null),
      max_message_bytes: z.int().min(64).default(65536),
      max_buffered_bytes: z.int().min(1024).default(4194304),
      shutdown_timeout: seconds.default(30),
    }).prefault({}),
    ws_ping: z.strictObject({
      interval: seconds.default(15),
      timeout: seconds.default(15),
    }).prefault({}),
    pubsub: z.strictObject({
      adapter: z.enum(["memory", "broadcast_channel", "redis"]).default("memory"),
      channel_prefix: z.string().default(""),
      redis: redisSchema(env).prefault({}),
      redis_alt: redisSchema(env).extend({ channel_prefix: z.string().default("") }).nullable()
        .default(null),
      broadcast_channel: z.strictObject({ name: z.string().min(1).default("shark") }).prefault(
        {},
      ),
    }).superRefine((pubsub, ctx) => {
      if (pubsub.redis_alt && pubsub.adapter !== "redis") {
        ctx.addIssue({
          code: "custom",
          path: ["redis_alt"],
          message: `is only used with the redis adapter, not ${pubsub.adapter}`,
        });
      }
    }).prefault({}),
    http: z.strictObject({
      timeout: positiveSeconds.default(15),
      tries: z.int().min(1).max(100).default(3),
      wait: seconds.default(3),
      rate_limit_reset_header_names: z.array(z.string().min(1)).default(["X-Rate-Limit-Reset"]),
    }).prefault({}),
    authentication: z.strictObject({
      ticket: z.strictObject({
        validation_url: secret(env, checkHttpUrl),
        auth_fields: fieldList.default([]),
      }).optional(),
    }).prefault({}),
    services: z.record(
      z.string().regex(/^[^.]+$/, "a service name must be non-empty and contain no '.'"),
      serviceSchema(env),
    ).default({}),
    delivery: z.strictObject({ metadata: z.boolean().default(true) }).prefault({}),
    publish_api: z.strictObject({ secret: secret(env).nullable().default(null) }).prefault({}),
    metrics: z.strictObject({
      prometheus: z.strictObject({
        host: z.string().min(1).default("127.0.0.1"),
        port: z.int().min(0).max(65535).nullable().default(null),
      }).prefault({}),
      log: z.strictObject({ interval: positiveSeconds.nullable().default(null) }).prefault({}),
    }).prefault({}),
    log: z.strictObject({
      level: z.enum(["trace", "debug", "info", "warning", "error", "fatal"]).default("info"),
      format: z.enum(["json", "text"]).default("json"),
    }).prefault({}),
  }).superRefine((config, ctx) => {
    if (config.pubsub.adapter === "broadcast_channel") {
      for (const [name, service] of Object.entries(config.services)) {
        if (service.history === null) continue;
        ctx.addIssue({
          code: "custom",
          path: ["services", name, "history"],
          message:
            "is not available with the broadcast_channel adapter: its isolates share no store",
        });
      }
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

/** A string, or `{"env": "NAME"}` to read it from the environment at start. */
export type Secret = string | { readonly env: string };

/** `server`: the client listener. */
export interface ServerConfig {
  /** Address to listen on. Default `"127.0.0.1"`. */
  readonly host: string;
  /** Port to listen on; 0 picks a free one. Default 9000. */
  readonly port: number;
  /** PEM files to serve `wss://`. Default `null` (plain `ws://`). */
  readonly tls: { readonly cert: string; readonly key: string } | null;
  /** Browser origins allowed to connect; `null` allows any. Default `null`. */
  readonly allowed_origins: readonly string[] | null;
  /** Upgrades beyond this many open connections get 503. Default `null` (no limit). */
  readonly max_connections: number | null;
  /** Larger client frames close the connection with 1009. Default 65536. */
  readonly max_message_bytes: number;
  /** A client with more unsent output is closed with 1008. Default 4194304. */
  readonly max_buffered_bytes: number;
  /** Seconds graceful shutdown waits for unsubscribe callbacks. Default 30. */
  readonly shutdown_timeout: number;
}

/** A Redis server of `pubsub`. */
export interface RedisConfig {
  /** `redis://` or `rediss://` URL with optional credentials and db. Default `"redis://127.0.0.1:6379/0"`. */
  readonly url: string;
  /** Seconds between health pings. Default 10. */
  readonly ping_interval: number;
  /** Seconds a ping may take before Redis counts as lost. Default 5. */
  readonly ping_timeout: number;
}

/** `pubsub`: how published envelopes reach this process. */
export interface PubSubConfig {
  /** Default `"memory"`. */
  readonly adapter: "memory" | "broadcast_channel" | "redis";
  /** Prefix of Redis channel names. Default `""`. */
  readonly channel_prefix: string;
  readonly redis: RedisConfig;
  /** A second Redis subscribed in parallel, with its own prefix. Default `null`. */
  readonly redis_alt: (RedisConfig & { readonly channel_prefix: string }) | null;
  readonly broadcast_channel: {
    /** The channel name shared by the isolates of one deployment. Default `"shark"`. */
    readonly name: string;
  };
}

/** `http`: the transport of service callbacks. */
export interface HttpConfig {
  /** Seconds per try. Default 15. */
  readonly timeout: number;
  /** Tries before `Service unavailable.`. Default 3. */
  readonly tries: number;
  /** Seconds between tries. Default 3. */
  readonly wait: number;
  /** Headers giving a 429's wait in seconds, first present wins. Default `["X-Rate-Limit-Reset"]`. */
  readonly rate_limit_reset_header_names: readonly string[];
}

/** One service under `services`. Callback URLs default to `null` (not called). */
export interface ServiceConfig {
  /** Subscribing needs a successful `auth`. Default `true`. */
  readonly require_authentication: boolean;
  readonly authorizer: string | null;
  /** Keys of the authorizer's reply kept and sent with later callbacks. Default `[]`. */
  readonly authorizer_fields: readonly string[];
  /** Seconds between re-authorizations. Default `null` (never). */
  readonly authorization_renewal_period: number | null;
  /** Up to this many seconds are taken off each renewal period at random. Default 0. */
  readonly authorization_renewal_jitter: number;
  /** Subscribe request keys kept with the subscription and echoed. Default `[]`. */
  readonly extra_fields: readonly string[];
  /** Envelope keys that must match the subscription or session. Default `[]`. */
  readonly filter_fields: readonly string[];
  readonly before_subscribe: string | null;
  readonly on_subscribe: string | null;
  readonly on_message: string | null;
  readonly before_unsubscribe: string | null;
  readonly on_unsubscribe: string | null;
  readonly on_authorization_change: string | null;
  /** Seconds between `on_heartbeat` calls. Default `null` (never). */
  readonly heartbeat_period: number | null;
  readonly on_heartbeat: string | null;
  /**
   * Keep the last `size` envelopes (1–10000) of each topic for `ttl` seconds
   * (> 0) after its last publish; messages carry positions and clients may
   * recover (SPEC section 10). Default `null` (off).
   */
  readonly history: HistoryOptions | null;
}

/** A validated configuration with every default filled in and secrets resolved. */
export interface SharkConfig {
  readonly $schema?: string;
  readonly server: ServerConfig;
  /** WebSocket keep-alive: seconds between pings and to wait for the pong. Default 15 and 15. */
  readonly ws_ping: { readonly interval: number; readonly timeout: number };
  readonly pubsub: PubSubConfig;
  readonly http: HttpConfig;
  /** Default `{}`: no method configured. */
  readonly authentication: {
    readonly ticket?: {
      readonly validation_url: string;
      /** Keys of the validation reply kept as the session's auth info. Default `[]`. */
      readonly auth_fields: readonly string[];
    };
  };
  /** Services by name (the part of a subscription before the first `.`). Default `{}`. */
  readonly services: Readonly<Record<string, ServiceConfig>>;
  /** Whether messages carry `published_at`, `received_at`, `sent_at`, `queue_size`. Default `true`. */
  readonly delivery: { readonly metadata: boolean };
  /** Bearer secret of `POST /publish`; `null` disables it. Default `null`. */
  readonly publish_api: { readonly secret: string | null };
  readonly metrics: {
    /** The Prometheus listener; `port: null` (default) disables it. */
    readonly prometheus: { readonly host: string; readonly port: number | null };
    /** Seconds between metrics log lines; `null` (default) disables them. */
    readonly log: { readonly interval: number | null };
  };
  readonly log: {
    /** Default `"info"`. */
    readonly level: "trace" | "debug" | "info" | "warning" | "error" | "fatal";
    /** Default `"json"`. */
    readonly format: "json" | "text";
  };
}

type Input<T> = T extends readonly (infer U)[] ? readonly Input<U>[]
  : T extends string ? T | Secret
  : T extends object ? { -readonly [K in keyof T]?: Input<T[K]> | null }
  : T;

/**
 * The configuration as written in `shark.json`: every key optional, secrets
 * and URLs may be `{"env": "NAME"}`. Validation is at run time, by
 * {@link loadConfig}.
 */
export type SharkConfigInput = Input<SharkConfig>;

/** Callback names of a service, in the order SPEC section 2 lists them. */
export type CallbackName =
  | "authorizer"
  | "before_subscribe"
  | "on_subscribe"
  | "on_message"
  | "before_unsubscribe"
  | "on_unsubscribe"
  | "on_authorization_change"
  | "on_heartbeat";

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
  const schema = z.toJSONSchema(configSchema(() => undefined), { io: "input" });
  return {
    ...schema,
    title: "Shark configuration (shark.json)",
    description: "See SPEC section 6. Every key is optional; defaults are filled in at start.",
  };
}
