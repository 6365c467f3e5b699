/**
 * The `shark.json` contract (SPEC section 6): one zod schema gives the
 * defaults, the validation with key paths, the resolved types and the JSON
 * Schema shipped as `shark.schema.json`.
 *
 * @module
 */
import { z } from "zod";

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
export function configSchema(env: EnvLookup) {
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

/** The configuration as written in `shark.json`: every key optional. */
export type SharkConfigInput = z.input<ReturnType<typeof configSchema>>;

/** A validated configuration with every default filled in and secrets resolved. */
export type SharkConfig = z.output<ReturnType<typeof configSchema>>;

/** One service's configuration, as found under `services`. */
export type ServiceConfig = SharkConfig["services"][string];

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
