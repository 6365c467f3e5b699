/**
 * Every string and number of the client protocol, in one place: event names,
 * error texts (SocketShark's, word for word) and WebSocket close codes.
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
} as const;

/** Error texts sent to clients, exactly as SocketShark words them. */
export const ErrorText = {
  invalidEvent: "Messages must be JSON and contain an event field.",
  eventNotFound: "Event not found.",
  unhandledException: "Unhandled exception.",
  serviceUnavailable: "Service unavailable.",
  authUnsupported: "Authentication method unsupported.",
  needsTicket: "Must specify ticket.",
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
} as const;

/** The authentication method used when an `auth` event names none. */
export const DEFAULT_AUTH_METHOD = "ticket";

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

/** Why Shark closes a connection: the close code and reason sent, and a metrics label. */
export const CloseReason = {
  /** Shark is shutting down. */
  shutdown: { code: 1001, reason: "server shutting down", name: "shutdown" },
  /** The client stopped reading: too much output is buffered for it. */
  slowConsumer: { code: 1008, reason: "slow consumer", name: "slow_consumer" },
  /** The client sent events faster than they can be handled. */
  tooManyEvents: { code: 1008, reason: "too many pending events", name: "too_many_events" },
  /** A frame exceeded `server.max_message_bytes`. */
  messageTooBig: { code: 1009, reason: "message too big", name: "message_too_big" },
  /** An unexpected failure while handling an event. */
  internalError: { code: 1011, reason: "internal error", name: "internal_error" },
  /** The pub/sub backend was lost: reconnect and subscribe again. */
  pubsubLost: { code: 1012, reason: "pub/sub connection lost", name: "pubsub_lost" },
} as const;

/** A reason for closing a connection. */
export type CloseReason = (typeof CloseReason)[keyof typeof CloseReason];
