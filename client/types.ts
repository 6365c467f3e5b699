/**
 * The client's public types: JSON values, the credentials of the `auth`
 * hook, the connection's and a subscription's states, the frames Shark sends
 * (subscribe replies, messages, history positions, presence members), a
 * subscription as the application holds it, and the client's events.
 *
 * @module
 */
import type { RequestOptions } from "./options.ts";

/**
 * Any JSON value.
 *
 * @example
 * ```ts
 * const data: JsonValue = { text: "hello", tags: ["a", "b"], pinned: false };
 * ```
 */
export type JsonValue = string | number | boolean | null | JsonValue[] | {
  [key: string]: JsonValue;
};

/**
 * A JSON object, as every frame of the protocol is.
 *
 * @example
 * ```ts
 * const extra: JsonObject = { author_id: "a1" };
 * ```
 */
export type JsonObject = { [key: string]: JsonValue };

/**
 * What the `auth` hook returns: a single-use ticket that Shark validates with
 * the application, or a signed JWT (docs/protocol.md, "Extension: JWT authentication").
 *
 * @example
 * ```ts
 * const byTicket: Credentials = { method: "ticket", ticket: "t-123" };
 * const byToken: Credentials = { method: "jwt", token: "eyJhbGciOi..." };
 * ```
 */
export type Credentials =
  | { readonly method: "ticket"; readonly ticket: string }
  | { readonly method: "jwt"; readonly token: string };

/**
 * Why the `auth` hook is called: a new connection (every connect and
 * reconnect: tickets are single-use), or a JWT about to expire on an open
 * connection.
 *
 * @example
 * ```ts
 * const auth = ({ reason }: AuthContext): Credentials => {
 *   console.log(reason === "refresh" ? "token about to expire" : "connecting");
 *   return { method: "ticket", ticket: "t-123" };
 * };
 * ```
 */
export interface AuthContext {
  readonly reason: "connect" | "refresh";
}

/**
 * The connection's state: `connecting` (opening and authenticating),
 * `connected` (authenticated; subscriptions flow), `disconnected` (waiting
 * to reconnect) or `closed` (for good: `close()` or a close code that must
 * not be retried).
 *
 * @example
 * ```ts
 * const label = (state: ConnectionState) => state === "connected" ? "live" : state;
 * ```
 */
export type ConnectionState = "connecting" | "connected" | "disconnected" | "closed";

/**
 * A subscription's state: `subscribing` (before the subscribe reply, or
 * waiting to resubscribe after a reconnect), `subscribed`, `unsubscribing`
 * (after `unsubscribe()`, before the reply) or `ended`.
 *
 * @example
 * ```ts
 * const live = (state: SubscriptionState) => state === "subscribed";
 * ```
 */
export type SubscriptionState = "subscribing" | "subscribed" | "unsubscribing" | "ended";

/**
 * A position in a topic's history (docs/protocol.md, "Extension: history and recovery").
 *
 * @example
 * ```ts
 * const position: Position = { offset: 41, epoch: "65f1c2a90e4b1" };
 * ```
 */
export interface Position {
  readonly offset: number;
  readonly epoch: string;
}

/**
 * A successful subscribe reply: the subscription's extra fields, `data` from
 * the service's `before_subscribe`, and for a history service the topic's
 * position and, when the client asked to recover, whether it did.
 *
 * @example
 * ```ts
 * function show(reply: SubscribeReply) {
 *   if (reply.recovered) console.log("missed messages follow");
 *   else console.log("fresh state", reply.data);
 * }
 * ```
 */
export interface SubscribeReply {
  readonly event: "subscribe";
  readonly status: "ok";
  readonly subscription: string;
  readonly data?: JsonValue;
  readonly offset?: number;
  readonly epoch?: string;
  /** Present when the subscribe carried `recover`: `true`, the missed messages follow. */
  readonly recovered?: boolean;
  /** A presence service's id of this connection (a new one after every reconnect). */
  readonly client?: string;
  readonly [key: string]: JsonValue | undefined;
}

/**
 * One member of a presence service's topic (`docs/presence.md`): a
 * subscription, on any node, with the connection's `client` id, its `user`
 * (`""` when unknown) and the `info` fields the service shows of it. (A
 * type, not an interface, so that it is a {@link JsonValue} too.)
 *
 * @example
 * ```ts
 * const label = (member: Member) => String(member.info.name ?? member.user);
 * ```
 */
export type Member = {
  readonly client: string;
  readonly user: string;
  readonly info: JsonObject;
};

/**
 * Who is subscribed to a topic now: every member (this subscription
 * included), their number, and the number of distinct non-empty users.
 *
 * @example
 * ```ts
 * const line = ({ clients, users }: Presence) => `${users} people, ${clients} tabs`;
 * ```
 */
export interface Presence {
  readonly members: Member[];
  readonly clients: number;
  readonly users: number;
}

/**
 * A message Shark pushed to a subscription: `data`, the subscription's extra
 * fields, delivery metadata and, for a history service, its position.
 *
 * @example
 * ```ts
 * const onMessage = (message: MessageFrame) => console.log(message.data, message.offset);
 * ```
 */
export interface MessageFrame {
  readonly event: "message";
  readonly subscription: string;
  readonly data: JsonValue;
  readonly offset?: number;
  readonly epoch?: string;
  readonly published_at?: string;
  readonly received_at?: string;
  readonly sent_at?: string;
  readonly queue_size?: number;
  readonly [key: string]: JsonValue | undefined;
}

/**
 * One subscription of a {@link SharkClient}; it lives across reconnects
 * until `unsubscribe()`, the client's `close()`, or Shark ending it.
 *
 * @example
 * ```ts
 * import { SharkClient } from "@shark/shark/client";
 *
 * const client = new SharkClient("ws://127.0.0.1:9000/");
 * const room: Subscription = client.subscribe("chat.lobby", { extra: { nick: "ada" } });
 * const { data } = await room.ready;
 * const id = await room.request({ text: "hi" }, { timeout: 5000 });
 * const { members } = await room.presence(); // a presence service
 * await room.unsubscribe();
 * ```
 */
export interface Subscription {
  /** The subscription's name, `SERVICE.TOPIC`. */
  readonly name: string;
  /** Its extra fields. */
  readonly extra: JsonObject;
  /** Resolves with the first subscribe reply; rejects with the error reply as a {@link SharkError}. */
  readonly ready: Promise<SubscribeReply>;
  /** See {@link SubscriptionState}. */
  readonly state: SubscriptionState;
  /** The last position seen (history services only). */
  readonly position: Position | undefined;
  /**
   * A presence service's id of this connection, from the last subscribe
   * reply: find yourself among the members with it. `undefined` while not
   * subscribed; a new one after every reconnect.
   */
  readonly client: string | undefined;
  /**
   * Sends a `message` event with `data` for the service's `on_message`, now
   * or, while (re)subscribing, once subscribed. Returns nothing: `data` that
   * `on_message` answers goes to `onReply`, a refusal, or a connection lost
   * before Shark answered, to `onError`. Messages are never sent twice.
   */
  send(data: JsonValue): void;
  /**
   * Like `send()`, as a request: resolves with the `data` that `on_message`
   * answered (`null` for an answer without data), with `undefined` when it
   * answered nothing (an `ok` without `data`), and rejects with a
   * {@link SharkError} when it failed, on timeout, or when the connection
   * was lost before Shark answered.
   */
  request(data: JsonValue, options?: RequestOptions): Promise<JsonValue | undefined>;
  /**
   * Ends the subscription; resolves when Shark confirmed (or at once while
   * disconnected). Rejects with a {@link SharkError} when the service's
   * `before_unsubscribe` refused: the subscription then stays.
   */
  unsubscribe(): Promise<void>;
  /**
   * Asks Shark who is subscribed to the topic (a presence service), now or,
   * while (re)subscribing, once subscribed. Rejects with the error reply as
   * a {@link SharkError} (`Presence not enabled.`, `Service unavailable.`,
   * ...), with the subscribe's error when the subscription was refused, or
   * when the connection was lost before Shark answered. Joins and leaves
   * that happen while disconnected are not sent: read the members again in
   * `onSubscribed`, which runs after every reconnect.
   */
  presence(): Promise<Presence>;
}

/**
 * Details of the client's events, by event name.
 *
 * @example
 * ```ts
 * const log = (detail: SharkClientEventMap["disconnected"]) =>
 *   console.log(detail.code, detail.reason, detail.reconnect ? `in ${detail.delay} ms` : "for good");
 * ```
 */
export interface SharkClientEventMap {
  /** A connection attempt starts; `attempt` counts the failed ones before it (0 first). */
  connecting: { readonly attempt: number };
  /** Authenticated (or open, without `auth`); subscriptions are sent next. */
  connected: { readonly reconnected: boolean };
  /**
   * The connection closed. `code` and `reason` are the close frame's (4000
   * when the client gave up on it: no pong, refused credentials); `delay` is
   * the wait before the next attempt, `null` when none follows.
   */
  disconnected: {
    readonly code: number;
    readonly reason: string;
    readonly reconnect: boolean;
    readonly delay: number | null;
  };
  /** Something failed that the client handles itself (it reconnects or goes on). */
  error: { readonly error: Error };
  /** A liveness pong arrived, `rtt` ms after its ping. */
  ping: { readonly rtt: number };
}
