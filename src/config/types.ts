/**
 * The types of a validated configuration (SPEC section 6), explicit for the
 * public API. They name what a configuration holds and nothing more: each
 * key's meaning and default are declared once, beside its validation, in the
 * zod schema of `config.ts` (and shown by editors from `shark.schema.json`).
 *
 * @module
 */
import type { HistoryOptions } from "../pubsub/history.ts";

import type { JwtAlgorithm } from "../auth/jws.ts";

/** A string, or `{"env": "NAME"}` to read it from the environment at start. */
export type Secret = string | { readonly env: string };

/** `server` (see `configSchema`). */
export interface ServerConfig {
  readonly host: string;
  readonly port: number;
  readonly tls: { readonly cert: string; readonly key: string } | null;
  readonly allowed_origins: readonly string[] | null;
  readonly max_connections: number | null;
  readonly max_connections_per_address: number | null;
  readonly max_memory_bytes: number | null;
  readonly max_message_bytes: number;
  readonly max_subscriptions: number;
  readonly idle_timeout: number | null;
  readonly max_fanout_queue_bytes: number;
  readonly catch_up_sessions: number | null;
  readonly max_buffered_bytes: number;
  readonly handshake_timeout: number;
  readonly shutdown_timeout: number;
  readonly transport: "shark" | "deno";
}

/** `pubsub.redis` (see `configSchema`). */
export interface RedisConfig {
  readonly url: string;
  readonly ping_interval: number;
  readonly ping_timeout: number;
}

/** `pubsub.redis` (see `configSchema`): `url` is `""` when `cluster` is set. */
export interface RedisMainConfig extends RedisConfig {
  readonly cluster: readonly string[] | null;
  readonly sharded: boolean;
}

/** `pubsub` (see `configSchema`). */
export interface PubSubConfig {
  readonly adapter: "memory" | "broadcast_channel" | "redis";
  readonly channel_prefix: string;
  readonly redis: RedisMainConfig;
  readonly redis_alt: (RedisConfig & { readonly channel_prefix: string }) | null;
  readonly broadcast_channel: { readonly name: string };
}

/** `http` (see `configSchema`). */
export interface HttpConfig {
  readonly timeout: number;
  readonly tries: number;
  readonly wait: number;
  readonly max_concurrent: number;
  readonly rate_limit_reset_header_names: readonly string[];
}

/** `presence` of a service (see `configSchema`, SPEC section 12). */
export interface PresenceConfig {
  readonly fields: readonly string[];
  readonly user_field: string;
  readonly join_leave: boolean;
  readonly ttl: number;
}

/** One service under `services` (see `configSchema`). */
export interface ServiceConfig {
  readonly require_authentication: boolean;
  readonly authorizer: string | null;
  readonly authorizer_fields: readonly string[];
  readonly authorization_renewal_period: number | null;
  readonly authorization_renewal_jitter: number;
  readonly extra_fields: readonly string[];
  readonly filter_fields: readonly string[];
  readonly before_subscribe: string | null;
  readonly on_subscribe: string | null;
  readonly on_message: string | null;
  readonly before_unsubscribe: string | null;
  readonly on_unsubscribe: string | null;
  readonly on_authorization_change: string | null;
  readonly heartbeat_period: number | null;
  readonly on_heartbeat: string | null;
  readonly history: HistoryOptions | null;
  readonly presence: PresenceConfig | null;
}

/** `authentication.jwt` (see `configSchema`): exactly one of `secret`, `public_key`, `jwks_url`. */
export interface JwtConfig {
  readonly secret: string | null;
  readonly public_key: string | null;
  readonly jwks_url: string | null;
  readonly algorithms: readonly JwtAlgorithm[];
  readonly issuer: string | null;
  readonly audience: string | readonly string[] | null;
  readonly leeway: number;
  readonly auth_fields: readonly string[];
}

/**
 * A validated configuration with every default filled in and secrets
 * resolved (see `configSchema`).
 */
export interface SharkConfig {
  readonly $schema?: string;
  readonly server: ServerConfig;
  readonly ws_ping: { readonly interval: number; readonly timeout: number };
  readonly pubsub: PubSubConfig;
  readonly http: HttpConfig;
  readonly authentication: {
    readonly ticket?: { readonly validation_url: string; readonly auth_fields: readonly string[] };
    readonly jwt?: JwtConfig | null;
  };
  readonly services: Readonly<Record<string, ServiceConfig>>;
  readonly delivery: { readonly metadata: boolean; readonly max_keys_per_subscription: number };
  readonly publish_api: { readonly secret: string | null };
  readonly metrics: {
    readonly prometheus: { readonly host: string; readonly port: number | null };
    readonly log: { readonly interval: number | null };
  };
  readonly log: {
    readonly level: "trace" | "debug" | "info" | "warning" | "error" | "fatal";
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
