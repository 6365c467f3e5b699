/**
 * Every string and number of the client protocol and the HTTP endpoints, in
 * one place: event names, error texts (SocketShark's, word for word), HTTP
 * error texts and WebSocket close codes with their reconnect rule (SPEC
 * sections 1, 7, 8, 12 and 13).
 *
 * @module
 */

/** Events a client may send. */
export const ClientEvent = {
  auth: "auth",
  subscribe: "subscribe",
  message: "message",
  unsubscribe: "unsubscribe",
  ping: "ping",
  /** Who is subscribed to a topic (SPEC section 12). */
  presence: "presence",
} as const;

/**
 * Events Shark sends that are not a reply named after the client's event.
 *
 * @example
 * ```ts
 * const isPong = (frame: { event?: string }) => frame.event === ServerEvent.pong;
 * ```
 */
export const ServerEvent = {
  /** The answer to a `ping`. */
  pong: "pong",
  /** A member joined a topic the session is subscribed to (SPEC section 12). */
  join: "join",
  /** A member left a topic the session is subscribed to (SPEC section 12). */
  leave: "leave",
} as const;

/** Error texts sent to clients, exactly as SocketShark words them. */
export const ErrorText = {
  invalidEvent: "Messages must be JSON and contain an event field.",
  eventNotFound: "Event not found.",
  unhandledException: "Unhandled exception.",
  serviceUnavailable: "Service unavailable.",
  authUnsupported: "Authentication method unsupported.",
  needsTicket: "Must specify ticket.",
  /** A `jwt` auth without a token (SPEC section 11). */
  needsToken: "Must specify token.",
  authFailed: "Authentication failed.",
  authRequired: "Authentication required.",
  unauthorized: "Unauthorized.",
  invalidSubscriptionFormat: "Invalid subscription format.",
  invalidService: "Invalid service.",
  alreadySubscribed: "Already subscribed.",
  subscriptionNotFound: "Subscription does not exist.",
  tooDeeplyNested: "Messages must not nest deeper than 64 levels.",
  /** Shark's own (SPEC section 10): a subscribe's `recover` is not a position. */
  invalidRecoverPosition: "Invalid recover position.",
  /** SPEC section 8: a subscribe beyond `server.max_subscriptions`. */
  tooManySubscriptions: "Too many subscriptions.",
  /** SPEC section 12: a `presence` event (or `POST /presence`) on a service without `presence`. */
  presenceNotEnabled: "Presence not enabled.",
  /** SPEC section 13: a subscription ended by the server API's `/unsubscribe`. */
  unsubscribed: "Unsubscribed.",
} as const;

/**
 * Keys Shark writes into the frames of a subscription: replies, `unsubscribe`
 * notices and messages (with delivery metadata). A service's `extra_fields`
 * may not name one, so that every frame carries each key once.
 */
export const RESERVED_FIELDS: readonly string[] = [
  "event",
  "status",
  "error",
  "data",
  "subscription",
  "published_at",
  "received_at",
  "sent_at",
  "queue_size",
];

/**
 * Reserved as well in a service with `history` (SPEC section 10): the
 * position keys of its replies and messages, and the subscribe's `recover`.
 */
export const HISTORY_RESERVED_FIELDS: readonly string[] = [
  "offset",
  "epoch",
  "recovered",
  "recover",
];

/**
 * Reserved as well in a service with `presence` (SPEC section 12): the keys
 * of its subscribe and `presence` replies and of its `join`/`leave` events.
 */
export const PRESENCE_RESERVED_FIELDS: readonly string[] = [
  "client",
  "member",
  "members",
  "clients",
  "users",
];

/** The largest `POST /publish` body accepted. */
export const MAX_PUBLISH_BYTES = 8 * 1024 * 1024;

/**
 * The `error` of Shark's JSON answers to plain HTTP requests and refused upgrades.
 *
 * @example
 * ```ts
 * const response = await fetch("http://127.0.0.1:9000/publish", { method: "POST", body: "[]" });
 * const { error } = await response.json();
 * if (error === HttpErrorText.badSecret) console.error("check the publish_api secret");
 * ```
 */
export const HttpErrorText = {
  usePost: "Use POST.",
  useWebSocket: "Connect with a WebSocket.",
  notFound: "Not found.",
  notReady: "Not ready.",
  originNotAllowed: "Origin not allowed.",
  tooManyConnections: "Too many connections.",
  /** Followed by `: ` and the runtime's reason. */
  badUpgrade: "Bad WebSocket upgrade",
  badSecret: "Bad or missing bearer secret.",
  /** Says {@link MAX_PUBLISH_BYTES} as a literal, so that a bundle can leave this table out (a test keeps them equal). */
  bodyTooLarge: "Body exceeds 8388608 bytes.",
  notJson: "Body is not JSON.",
  nothingToPublish: "No envelope to publish.",
  pubsubUnavailable: "Pub/sub unavailable.",
  /** `POST /publish` (504): sent, but the connection was lost before the reply (SPEC section 14). */
  publishOutcomeUnknown:
    "Pub/sub did not answer: the envelopes may or may not have been published.",
  /** `server.max_connections_per_address` (429). */
  tooManyFromAddress: "Too many connections from this address.",
  /** `server.max_memory_bytes` (503). */
  lowOnMemory: "Server low on memory: try again later.",
  /** `server.max_fanout_queue_bytes` (503 on `POST /publish`). */
  queueFull: "Fan-out queue full: try again later.",
  /** A server API body (SPEC section 13) that is not a JSON object. */
  notAnObject: "Body must be a JSON object.",
  /** A server API body whose `client` is not a non-empty string. */
  badClient: '"client" must be a non-empty string.',
  /** A server API body whose `match` is not a non-empty object. */
  badMatch: '"match" must be a non-empty object.',
  /** A server API body whose `reconnect` is not a boolean. */
  badReconnect: '"reconnect" must be a boolean.',
  /** A server API body with both or neither of `client` and `match`. */
  oneTarget: 'Give exactly one of "client" or "match".',
} as const;

/**
 * The pub/sub topic the server API's commands travel on (SPEC section 13),
 * under `channel_prefix` like every topic: without a `.`, so that no
 * `SERVICE.TOPIC` can name it.
 */
export const CONTROL_TOPIC = "shark:control";

/** Authentication methods, as the `method` of an `auth` event names them. */
export const AuthMethod = {
  ticket: "ticket",
  /** A signed token from the application's identity provider (SPEC section 11). */
  jwt: "jwt",
} as const;

/** The authentication method used when an `auth` event names none. */
export const DEFAULT_AUTH_METHOD: typeof AuthMethod.ticket = "ticket";

/** Longer event names are treated as malformed and never echoed. */
export const MAX_EVENT_NAME_LENGTH = 40;

/** `ping` data longer than this is cut before it is echoed in the `pong`. */
export const MAX_PING_DATA_LENGTH = 128;

/** JSON from a client nesting deeper than this is refused. */
export const MAX_JSON_DEPTH = 64;

/**
 * Client events queued behind the one being handled; a client that sends
 * faster than its services answer is disconnected rather than buffered forever.
 */
export const MAX_PENDING_EVENTS = 256;

/**
 * Why Shark closes a connection, and what the client should do about it.
 *
 * Only `code` and `reason` go on the wire; `reconnect` is the rule a client
 * applies to them. It is `false` only where the client caused the close with
 * what it sent and would cause it again by sending the same, or where the
 * application said so through the server API. Every code maps
 * to one flag, so a client that reads only the code decides the same way.
 */
export interface CloseReason {
  /** The WebSocket close code. */
  readonly code: number;
  /** The close reason text; clients may show or match it. */
  readonly reason: string;
  /** The `reason` label of `shark_connections_closed_total`. */
  readonly name: string;
  /** Whether the client should reconnect (with backoff) and subscribe again. */
  readonly reconnect: boolean;
}

/**
 * Every reason Shark closes a connection for: the one table of codes, texts
 * and reconnect flags.
 *
 * @example
 * ```ts
 * const socket = new WebSocket("ws://127.0.0.1:9000");
 * socket.onclose = ({ code }) => {
 *   const reason = Object.values(CloseReason).find((known) => known.code === code);
 *   if (reason?.reconnect ?? true) setTimeout(() => console.log("reconnecting"), 1000);
 * };
 * ```
 */
export const CloseReason = {
  /** Shark is shutting down. Reconnect: another node, or this one restarted, takes the client. */
  shutdown: {
    code: 1001,
    reason: "server shutting down",
    name: "shutdown",
    reconnect: true,
  },
  /**
   * The client stopped reading: too much output is buffered for it.
   * Reconnect: it was behind, not wrong, and gets fresh state on subscribing again.
   */
  slowConsumer: {
    code: 1008,
    reason: "slow consumer",
    name: "slow_consumer",
    reconnect: true,
  },
  /** The client sent events faster than they can be handled. Reconnect: a burst, not a fault. */
  tooManyEvents: {
    code: 1008,
    reason: "too many pending events",
    name: "too_many_events",
    reconnect: true,
  },
  /**
   * A frame exceeded `server.max_message_bytes`. Do not reconnect: the client
   * would send the same frame again.
   */
  messageTooBig: {
    code: 1009,
    reason: "message too big",
    name: "message_too_big",
    reconnect: false,
  },
  /** An unexpected failure while handling an event. Reconnect: the fault is Shark's. */
  internalError: {
    code: 1011,
    reason: "internal error",
    name: "internal_error",
    reconnect: true,
  },
  /**
   * The JWT of the last `auth` expired (`exp` + leeway) without a new `auth`
   * (SPEC section 11). Reconnect with a fresh token.
   */
  tokenExpired: {
    code: 4001,
    reason: "token expired",
    name: "token_expired",
    reconnect: true,
  },
  /**
   * The application disconnected the client through the server API (`POST
   * /disconnect`, SPEC section 13). Do not reconnect: it was told to go.
   */
  disconnected: {
    code: 4003,
    reason: "disconnected",
    name: "disconnected",
    reconnect: false,
  },
  /**
   * The application disconnected the client through the server API with
   * `"reconnect": true`. Reconnect, with backoff: it was asked to start over.
   */
  disconnectedReconnect: {
    code: 4004,
    reason: "disconnected, reconnect",
    name: "disconnected_reconnect",
    reconnect: true,
  },
  /**
   * The pub/sub backend was lost. Reconnect and subscribe again: Shark accepts
   * connections again once the backend is back.
   */
  pubsubLost: {
    code: 1012,
    reason: "pub/sub connection lost",
    name: "pubsub_lost",
    reconnect: true,
  },
  /**
   * `server.idle_timeout` passed without a successful `auth` or a subscription.
   * Do not reconnect until there is something to subscribe to: an idle
   * connection would be closed again.
   */
  idleTimeout: {
    code: 4008,
    reason: "idle timeout",
    name: "idle_timeout",
    reconnect: false,
  },
} as const satisfies Record<string, CloseReason>;
