/**
 * The options of the client and of its subscriptions, with their defaults.
 *
 * @module
 */
import type { Clock } from "./clock.ts";
import type { SharkError } from "./errors.ts";
import type {
  AuthContext,
  Credentials,
  JsonObject,
  JsonValue,
  Member,
  MessageFrame,
  Position,
  SubscribeReply,
} from "./types.ts";

/**
 * Reconnect delays: capped exponential backoff with full jitter. The n-th
 * attempt in a row (from 0) waits `random() × min(max, min × 2ⁿ)` ms.
 *
 * @example
 * ```ts
 * const backoff: BackoffOptions = { min: 1000, max: 60_000, resetAfter: 30_000 };
 * ```
 */
export interface BackoffOptions {
  /** The cap of the first delay, ms. Default 500. */
  readonly min?: number;
  /** The cap of every delay, ms. Default 20 000. */
  readonly max?: number;
  /**
   * A connection that stayed connected this long (ms) resets the backoff to
   * its first step when it closes. Default 10 000.
   */
  readonly resetAfter?: number;
}

/**
 * The WebSocket constructor the client uses: the global one by default, or
 * any implementation of the standard interface (e.g. the `ws` package on
 * Node before 22).
 *
 * @example
 * ```ts
 * const Native: WebSocketConstructor = WebSocket;
 * ```
 */
export type WebSocketConstructor = new (url: string) => WebSocket;

/**
 * Options of a {@link SharkClient}; all optional.
 *
 * @example
 * ```ts
 * const options: SharkClientOptions = {
 *   auth: () => ({ method: "jwt", token: localStorage.getItem("token") ?? "" }),
 *   backoff: { min: 500, max: 20_000 },
 *   pingInterval: 25_000,
 *   pongTimeout: 20_000,
 * };
 * ```
 */
export interface SharkClientOptions {
  /**
   * Called on every connect, before any subscribe is sent; for a JWT with an
   * `exp` also before it expires, and the fresh token is sent on the open
   * connection. A throw, or Shark refusing the credentials, closes the
   * connection and reconnects with backoff (reported as an `error` event).
   * Without it the client never authenticates.
   */
  readonly auth?: (context: AuthContext) => Credentials | Promise<Credentials>;
  /** Reconnect delays. */
  readonly backoff?: BackoffOptions;
  /** A `ping` is sent this often (ms) on an open connection. Default 25 000; 0 disables. */
  readonly pingInterval?: number;
  /**
   * Nothing received for this long (ms) after a `ping`, or a socket not open
   * this long after the attempt began: the connection is taken as dead,
   * closed (code 4000) and reconnected. Shark answers a ping after the events
   * sent before it, so keep this above the slowest service callback.
   * Default 20 000.
   */
  readonly pongTimeout?: number;
  /** A JWT is refreshed this long (ms) before its `exp`, at most half its life. Default 30 000. */
  readonly refreshBefore?: number;
  /**
   * Events sent and not yet answered, at most (2 at the least: a message and
   * its ping); more wait in the client. Shark closes a connection with more
   * than 256 queued (1008). Default 128.
   */
  readonly maxPendingEvents?: number;
  /** The jitter's random source, in [0, 1). Default `Math.random`. */
  readonly random?: () => number;
  /** Default the global `WebSocket`. */
  readonly WebSocket?: WebSocketConstructor;
  /**
   * The time and timers of every wait: reconnect backoff, the open, ping and
   * pong timeouts, JWT refresh, resubscribe retries and request timeouts.
   * Default the runtime's (`Date.now()`, `setTimeout`); tests pass a fake one.
   */
  readonly clock?: Clock;
}

/**
 * Callbacks and options of one subscription; all optional.
 *
 * @example
 * ```ts
 * const options: SubscribeOptions = {
 *   extra: { author_id: "a1" },
 *   onSubscribed: (reply, resubscribed) => console.log(resubscribed, reply.data),
 *   onMessage: (message) => console.log(message.data),
 *   onJoin: (member) => console.log("joined:", member.user),
 *   onLeave: (member) => console.log("left:", member.user),
 *   onUnsubscribed: (error) => console.log("ended:", error.message),
 * };
 * ```
 */
export interface SubscribeOptions {
  /** Extra fields sent with every subscribe (the service's `extra_fields`). */
  readonly extra?: JsonObject;
  /**
   * Send `recover` with the last position seen when subscribing again (only
   * history services report positions). Default true.
   */
  readonly recover?: boolean;
  /** Recover from this position on the first subscribe too, e.g. one kept across a page load. */
  readonly position?: Position;
  /**
   * Every successful subscribe reply: the first (also `ready`'s value) and
   * each after a reconnect (`resubscribed`). `reply.recovered === true`: the
   * missed messages follow; otherwise `reply.data` is fresh state. For a
   * presence service this is where to read the members (`presence()`): after
   * a reconnect the list shown is stale (joins and leaves meanwhile were not
   * sent) and `reply.client` is a new id.
   */
  readonly onSubscribed?: (reply: SubscribeReply, resubscribed: boolean) => void;
  /** Every message pushed to this subscription. */
  readonly onMessage?: (message: MessageFrame) => void;
  /** Another subscription to the topic became a member (a presence service with `join_leave`). */
  readonly onJoin?: (member: Member) => void;
  /** A member of the topic left: unsubscribed, disconnected, or its node died. */
  readonly onLeave?: (member: Member) => void;
  /** `on_message` answered a {@link Subscription.send} with `data`. */
  readonly onReply?: (data: JsonValue, reply: JsonObject) => void;
  /**
   * An error that ends nothing: a `send()` refused or not known to have
   * arrived, a resubscribe answered `Service unavailable.` (tried again with
   * backoff). Without it, errors go to the client's `error` event.
   */
  readonly onError?: (error: SharkError) => void;
  /**
   * The subscription ended without the application asking: Shark's
   * `unsubscribe` notice after a failed re-authorization, or a resubscribe
   * refused after a reconnect. It is not subscribed again.
   */
  readonly onUnsubscribed?: (error: SharkError) => void;
}

/**
 * Options of {@link Subscription.request}.
 *
 * @example
 * ```ts
 * const options: RequestOptions = { timeout: 5000 };
 * ```
 */
export interface RequestOptions {
  /** Reject after this many ms without an answer (the message may still be handled). Default 30 000; 0 waits. */
  readonly timeout?: number;
}
