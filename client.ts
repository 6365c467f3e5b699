/**
 * The Shark client: one WebSocket to Shark that authenticates, subscribes,
 * reconnects with backoff and re-establishes every subscription, for
 * browsers, Deno, Node 22+ and Bun (web-standard APIs only, no
 * dependencies). It speaks the client protocol of SocketShark and Shark's
 * history recovery and JWT refresh, as `docs/protocol.md` describes them.
 *
 * ```ts
 * import { SharkClient } from "./client.ts"; // or "@shark/shark/client"
 *
 * const client = new SharkClient("wss://shark.example.com/", {
 *   auth: async () => {
 *     const response = await fetch("/ws/ticket", { method: "POST" });
 *     return { method: "ticket", ticket: (await response.json()).ticket };
 *   },
 * });
 * client.on("disconnected", ({ code, delay }) => console.log(`closed ${code}, again in ${delay} ms`));
 * const room = client.subscribe("chat.lobby", {
 *   onSubscribed: (reply) => console.log(reply.recovered ? "caught up" : "fresh state", reply.data),
 *   onMessage: (message) => console.log(message.data),
 * });
 * await room.ready;
 * room.send({ text: "hello" });
 * ```
 *
 * How it works, where the protocol leaves room: Shark answers a connection's
 * events one at a time and in order (docs/protocol.md, "Client events"), and answers every
 * event but a `message` whose `on_message` returned no `data`. So the client
 * follows each `message` with a `ping`: the pong (or the reply before it)
 * tells it exactly when and how each message was handled, and every reply is
 * matched to its request by position. Subscribes are sent after `auth`
 * succeeded, in the order the application made them.
 *
 * The close codes that stop reconnecting come from Shark's own table
 * (`CloseReason` in `src/protocol.ts`, a module without imports): only those
 * flagged `reconnect: false` (1009, a frame too big that would be sent
 * again). Every other code reconnects, codes Shark never sends included
 * (1006 for a dropped network, whatever a proxy sends).
 *
 * @module
 */
import { ClientEvent, CloseReason, ErrorText, ServerEvent } from "./src/protocol.ts";

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
  readonly [key: string]: JsonValue | undefined;
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
 * An error from Shark: an error reply (`reply.status` is `"error"`), the
 * `unsubscribe` notice of a failed re-authorization (no `status`), or,
 * without `reply`, the client giving up on an answer (disconnected, timed
 * out, closed, unsubscribed).
 *
 * @example
 * ```ts
 * try {
 *   await new SharkClient("ws://127.0.0.1:9000/").subscribe("books.secret").ready;
 * } catch (error) {
 *   if (error instanceof SharkError) console.log(error.message, error.reply?.data);
 * }
 * ```
 */
export class SharkError extends Error {
  /** The frame from Shark, when Shark said it. */
  readonly reply?: JsonObject;

  constructor(message: string, reply?: JsonObject) {
    super(message);
    this.name = "SharkError";
    this.reply = reply;
  }
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
   * missed messages follow; otherwise `reply.data` is fresh state.
   */
  readonly onSubscribed?: (reply: SubscribeReply, resubscribed: boolean) => void;
  /** Every message pushed to this subscription. */
  readonly onMessage?: (message: MessageFrame) => void;
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

/**
 * One subscription of a {@link SharkClient}; it lives across reconnects
 * until `unsubscribe()`, the client's `close()`, or Shark ending it.
 *
 * @example
 * ```ts
 * const client = new SharkClient("ws://127.0.0.1:9000/");
 * const room: Subscription = client.subscribe("chat.lobby", { extra: { nick: "ada" } });
 * const { data } = await room.ready;
 * const id = await room.request({ text: "hi" }, { timeout: 5000 });
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

/** The close code of a connection the client itself gave up on. */
const GAVE_UP = 4000;
/** Timers fire at once beyond this (ms, about 24.8 days): a long-lived token must not loop. */
const MAX_TIMER = 2 ** 31 - 1;
const DEFAULT_BACKOFF = { min: 500, max: 20_000, resetAfter: 10_000 };

/** Whether a close code gets a reconnect: Shark's table decides the codes it knows. */
function reconnects(code: number): boolean {
  for (const reason of Object.values(CloseReason)) {
    if (reason.code === code) return reason.reconnect;
  }
  return true;
}

/** A promise with its settle functions (`Promise.withResolvers` is too new for some browsers). */
interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((ok, fail) => {
    resolve = ok;
    reject = fail;
  });
  return { promise, resolve, reject };
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

function errorOf(reply: JsonObject): SharkError {
  const text = reply.error;
  return new SharkError(typeof text === "string" ? text : JSON.stringify(text ?? null), reply);
}

/**
 * When to fetch a fresh token (ms from now), from the unverified payload's
 * `exp`; `undefined` without one. When this clock and the issuer's disagree
 * about the remaining life (more than `exp − iat`, or none left although
 * Shark just accepted it), the token's own lifetime is trusted.
 */
function refreshDelay(token: string, before: number): number | undefined {
  let claims: { exp?: unknown; iat?: unknown };
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    claims = JSON.parse(atob(part.padEnd(Math.ceil(part.length / 4) * 4, "=")));
  } catch {
    return undefined;
  }
  const { exp, iat } = claims;
  if (typeof exp !== "number") return undefined;
  let left = exp * 1000 - Date.now();
  const life = typeof iat === "number" && exp > iat ? (exp - iat) * 1000 : undefined;
  if (life !== undefined && (left <= 0 || left > life)) left = life;
  return Math.max(0, left - Math.min(before, left / 2));
}

/** An event sent and not answered yet. */
interface Pending {
  readonly event: string;
  /** Frames it is made of (a message and its ping count two). */
  readonly count: number;
  /** A message's reply, held until its ping's pong completes it. */
  reply?: JsonObject;
  answer(reply: JsonObject | undefined): void;
  fail(error: SharkError): void;
}

/** One socket and the events sent on it, answered in order. */
class Connection {
  readonly socket: WebSocket;
  readonly closed: Promise<void>;
  connectedAt = 0;
  lastFrameAt = 0;
  readonly #timers = new Map<string, ReturnType<typeof setTimeout>>();
  readonly #pending: Pending[] = [];
  readonly #waiting: { frames: JsonObject[]; entry: Pending }[] = [];
  readonly #max: number;
  #inFlight = 0;

  constructor(socket: WebSocket, max: number) {
    this.socket = socket;
    this.#max = Math.max(2, max);
    this.closed = new Promise((resolve) => socket.addEventListener("close", () => resolve()));
  }

  send(frames: JsonObject[], entry: Pending): void {
    if (this.#waiting.length > 0 || this.#inFlight + entry.count > this.#max) {
      this.#waiting.push({ frames, entry });
    } else this.#transmit(frames, entry);
  }

  #transmit(frames: JsonObject[], entry: Pending): void {
    this.#inFlight += entry.count;
    this.#pending.push(entry);
    for (const frame of frames) this.socket.send(JSON.stringify(frame));
  }

  /** Routes a reply or pong to the event it answers; false when it answers none. */
  answer(frame: JsonObject): boolean {
    const head = this.#pending[0];
    if (!head) return false;
    const pong = frame.event === ServerEvent.pong;
    if (!pong && frame.event === ClientEvent.message) {
      if (head.event !== ClientEvent.message || head.reply) return false;
      head.reply = frame;
      return true;
    }
    const expected = head.event === ClientEvent.message ? ClientEvent.ping : head.event;
    if ((pong ? ClientEvent.ping : frame.event) !== expected) return false;
    this.#pending.shift();
    this.#inFlight -= head.count;
    while (this.#waiting.length > 0 && this.#inFlight + this.#waiting[0].entry.count <= this.#max) {
      const { frames, entry } = this.#waiting.shift()!;
      this.#transmit(frames, entry);
    }
    head.answer(pong ? head.reply : frame);
    return true;
  }

  /** Runs `task` after `ms`, replacing the timer of the same name. */
  after(name: string, ms: number, task: () => void): void {
    clearTimeout(this.#timers.get(name));
    this.#timers.set(name, setTimeout(task, Math.min(ms, MAX_TIMER)));
  }

  cancel(name: string): void {
    clearTimeout(this.#timers.get(name));
  }

  /** Stops timers and fails every unanswered event. */
  dispose(error: SharkError): void {
    for (const timer of this.#timers.values()) clearTimeout(timer);
    const entries = [...this.#pending, ...this.#waiting.map(({ entry }) => entry)];
    this.#pending.length = this.#waiting.length = 0;
    for (const entry of entries) entry.fail(error);
  }
}

/** A message waiting to be sent or answered. */
interface Outgoing {
  readonly data: JsonValue;
  answer(reply: JsonObject | undefined): void;
  fail(error: SharkError): void;
}

/** What a subscription needs from its client. */
interface Owner {
  send(frames: JsonObject[], entry: Pending): boolean;
  forget(subscription: ClientSubscription): void;
  report(error: Error): void;
  delay(attempt: number): number;
}

class ClientSubscription implements Subscription {
  readonly name: string;
  readonly extra: JsonObject;
  readonly ready: Promise<SubscribeReply>;
  state: SubscriptionState = "subscribing";
  position: Position | undefined;
  readonly #options: SubscribeOptions;
  readonly #owner: Owner;
  readonly #settle: { resolve(reply: SubscribeReply): void; reject(error: SharkError): void };
  readonly #unsent: Outgoing[] = [];
  /** Subscribed once at least: later subscribes are resubscribes. */
  #subscribed = false;
  /** Subscribed on the current connection. */
  #live = false;
  /** A subscribe is on its way on the current connection. */
  #asked = false;
  #retries = 0;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #unsubscribing?: Deferred<void>;

  constructor(name: string, options: SubscribeOptions, owner: Owner) {
    this.name = name;
    this.extra = { ...options.extra };
    this.position = options.position;
    this.#options = options;
    this.#owner = owner;
    const { promise, resolve, reject } = deferred<SubscribeReply>();
    this.ready = promise;
    this.#settle = { resolve, reject };
    // An application that never awaits `ready` must not get an unhandled rejection.
    promise.catch(() => {});
  }

  send(data: JsonValue): void {
    this.#post({
      data,
      answer: (reply) => {
        if (reply) this.#call(this.#options.onReply, reply.data ?? null, reply);
      },
      fail: (error) => this.#error(error),
    });
  }

  request(data: JsonValue, options: RequestOptions = {}): Promise<JsonValue | undefined> {
    const { promise, resolve, reject } = deferred<JsonValue | undefined>();
    const timeout = options.timeout ?? 30_000;
    const timer = timeout > 0
      ? setTimeout(() => reject(new SharkError(`no answer within ${timeout} ms`)), timeout)
      : undefined;
    promise.then(() => clearTimeout(timer), () => clearTimeout(timer));
    this.#post({
      data,
      answer: (reply) => resolve(reply && (reply.data ?? null)),
      fail: reject,
    });
    return promise;
  }

  unsubscribe(): Promise<void> {
    if (this.state === "ended") return Promise.resolve();
    if (this.#unsubscribing) return this.#unsubscribing.promise;
    const unsubscribing = deferred<void>();
    const frame = { event: ClientEvent.unsubscribe, subscription: this.name };
    // A subscribe still on its way is answered first: the unsubscribe follows it.
    const sent = (this.#live || this.#asked) && this.#owner.send([frame], {
      event: ClientEvent.unsubscribe,
      count: 1,
      answer: (reply) => {
        if (reply?.status === "ok" || !this.#live) return this.#end(undefined);
        this.state = "subscribed";
        this.#unsubscribing = undefined;
        unsubscribing.reject(errorOf(reply!));
      },
      fail: () => this.#end(undefined),
    });
    if (!sent) {
      this.#end(undefined);
      return Promise.resolve();
    }
    this.state = "unsubscribing";
    this.#unsubscribing = unsubscribing;
    return unsubscribing.promise;
  }

  /** Sends the subscribe on a connected client, unless it is already on this connection. */
  connected(): void {
    if (this.state !== "subscribing" || this.#asked || this.#retry !== undefined) return;
    const recover = this.#options.recover !== false && this.position;
    const frame: JsonObject = {
      ...this.extra,
      event: ClientEvent.subscribe,
      subscription: this.name,
      ...(recover ? { recover: { offset: recover.offset, epoch: recover.epoch } } : {}),
    };
    this.#asked = this.#owner.send([frame], {
      event: ClientEvent.subscribe,
      count: 1,
      answer: (reply) => this.#replied(reply!),
      fail: () => {},
    });
  }

  /** The connection is gone: subscribe again on the next one. */
  disconnected(): void {
    this.#asked = this.#live = false;
    clearTimeout(this.#retry);
    this.#retry = undefined;
    if (this.state === "subscribed") this.state = "subscribing";
  }

  /** A frame Shark pushed to this subscription. */
  pushed(frame: JsonObject): void {
    if (frame.event === ClientEvent.unsubscribe) {
      return this.#end(errorOf(frame), this.#options.onUnsubscribed);
    }
    if (this.state !== "subscribed" && this.state !== "unsubscribing") return;
    this.#advance(frame);
    this.#call(this.#options.onMessage, frame as MessageFrame);
  }

  /** Ends it: nothing more is sent or delivered. */
  end(error: SharkError): void {
    this.#end(error);
  }

  #replied(reply: JsonObject): void {
    this.#asked = false;
    if (reply.status !== "ok") {
      if (this.state !== "subscribing") return;
      const error = errorOf(reply);
      if (this.#subscribed && reply.error === ErrorText.serviceUnavailable) {
        this.#error(error);
        this.#retry = setTimeout(() => {
          this.#retry = undefined;
          this.connected();
        }, this.#owner.delay(this.#retries++));
        return;
      }
      return this.#end(error, this.#subscribed ? this.#options.onUnsubscribed : undefined);
    }
    if (this.state === "ended") return;
    const resubscribed = this.#subscribed;
    this.#subscribed = this.#live = true;
    this.#retries = 0;
    if (this.state === "subscribing") this.state = "subscribed";
    this.#advance(reply);
    this.#settle.resolve(reply as SubscribeReply);
    this.#call(this.#options.onSubscribed, reply as SubscribeReply, resubscribed);
    for (const item of this.#unsent.splice(0)) this.#post(item);
  }

  #post(item: Outgoing): void {
    if (this.state === "ended" || this.state === "unsubscribing") {
      return item.fail(new SharkError("not subscribed"));
    }
    const message = { event: ClientEvent.message, subscription: this.name, data: item.data };
    const sent = this.state === "subscribed" && this.#owner.send([message, {
      event: ClientEvent.ping,
      data: null,
    }], {
      event: ClientEvent.message,
      count: 2,
      answer: (reply) => reply?.status === "error" ? item.fail(errorOf(reply)) : item.answer(reply),
      fail: item.fail,
    });
    if (!sent) this.#unsent.push(item);
  }

  /** Keeps the highest position seen; another epoch replaces it. */
  #advance(frame: JsonObject): void {
    const { offset, epoch } = frame;
    if (typeof offset !== "number" || typeof epoch !== "string") return;
    if (this.position?.epoch === epoch && this.position.offset >= offset) return;
    this.position = { offset, epoch };
  }

  #end(error: SharkError | undefined, notify?: (error: SharkError) => void): void {
    if (this.state === "ended") return;
    this.state = "ended";
    clearTimeout(this.#retry);
    this.#owner.forget(this);
    const reason = error ?? new SharkError("unsubscribed");
    this.#settle.reject(reason);
    this.#unsubscribing?.resolve();
    for (const item of this.#unsent.splice(0)) item.fail(reason);
    if (notify) this.#call(notify, reason);
  }

  #error(error: SharkError): void {
    if (this.#options.onError) this.#call(this.#options.onError, error);
    else this.#owner.report(error);
  }

  #call<A extends unknown[]>(callback: ((...args: A) => void) | undefined, ...args: A): void {
    try {
      callback?.(...args);
    } catch (error) {
      this.#owner.report(asError(error));
    }
  }
}

/**
 * A connection to Shark that stays up: it authenticates through the `auth`
 * hook on every connect, reconnects with capped exponential backoff and full
 * jitter (after every close but those Shark's table marks final), checks
 * liveness with `ping`, refreshes JWTs before they expire, and subscribes
 * again to everything it held, with the same extra fields and, for history
 * services, the last position seen (`recover`). It starts connecting at once
 * (in a microtask: add listeners in the same turn).
 *
 * Events (`on()` or `addEventListener`, a `CustomEvent` whose `detail` is in
 * {@link SharkClientEventMap}): `connecting`, `connected`, `disconnected`,
 * `error`, `ping`.
 *
 * @example
 * ```ts
 * const client = new SharkClient("ws://127.0.0.1:9000/", {
 *   auth: async () => ({ method: "ticket", ticket: await (await fetch("/ticket")).text() }),
 *   backoff: { min: 500, max: 20_000 },
 * });
 * client.on("connected", ({ reconnected }) => console.log(reconnected ? "back" : "up"));
 * client.on("disconnected", ({ code, reason, delay }) => console.log(code, reason, delay));
 * const books = client.subscribe("books.book_1", { onMessage: ({ data }) => console.log(data) });
 * console.log((await books.ready).data);
 * await client.close();
 * ```
 */
export class SharkClient extends EventTarget {
  /** The Shark URL, `ws://` or `wss://`. */
  readonly url: string;
  readonly #options: SharkClientOptions;
  readonly #backoff: Required<BackoffOptions>;
  readonly #subscriptions = new Map<string, ClientSubscription>();
  readonly #closing = new Set<Promise<void>>();
  readonly #owner: Owner;
  #state: ConnectionState = "connecting";
  #connection: Connection | undefined;
  #attempt = 0;
  #reconnect: ReturnType<typeof setTimeout> | undefined;
  #wasConnected = false;

  /** Throws a `SyntaxError` for a URL that is not `ws:`, `wss:`, `http:` or `https:`. */
  constructor(url: string | URL, options: SharkClientOptions = {}) {
    super();
    const parsed = new URL(url);
    if (!/^(ws|wss|http|https):$/.test(parsed.protocol)) {
      throw new SyntaxError(`not a WebSocket URL: ${parsed.href}`);
    }
    this.url = parsed.href.replace(/^http/, "ws");
    this.#options = options;
    this.#backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.#owner = {
      send: (frames, entry) => {
        if (this.#state !== "connected") return false;
        this.#connection!.send(frames, entry);
        return true;
      },
      forget: (subscription) => {
        if (this.#subscriptions.get(subscription.name) === subscription) {
          this.#subscriptions.delete(subscription.name);
        }
      },
      report: (error) => this.#emit("error", { error }),
      delay: (attempt) => this.#delay(attempt),
    };
    queueMicrotask(() => this.#open());
  }

  /** See {@link ConnectionState}. */
  get state(): ConnectionState {
    return this.#state;
  }

  /** The subscriptions held, by name (ended ones are removed). */
  get subscriptions(): ReadonlyMap<string, Subscription> {
    return this.#subscriptions;
  }

  /**
   * Listens to one of the client's events; returns the function that stops it.
   *
   * @example
   * ```ts
   * const client = new SharkClient("ws://127.0.0.1:9000/");
   * const off = client.on("ping", ({ rtt }) => console.log(`${rtt} ms`));
   * off();
   * ```
   */
  on<K extends keyof SharkClientEventMap>(
    type: K,
    listener: (detail: SharkClientEventMap[K]) => void,
  ): () => void {
    const handler = (event: Event) => listener((event as CustomEvent).detail);
    this.addEventListener(type, handler);
    return () => this.removeEventListener(type, handler);
  }

  /**
   * Subscribes to `name` (`SERVICE.TOPIC`), now or once connected, and again
   * after every reconnect until it ends. Throws when this client already
   * holds a subscription of that name (Shark allows one per connection).
   *
   * @example
   * ```ts
   * const client = new SharkClient("ws://127.0.0.1:9000/");
   * const room = client.subscribe("chat.lobby", {
   *   extra: { nick: "ada" },
   *   onSubscribed: (reply) => console.log(reply.recovered ? "caught up" : reply.data),
   *   onMessage: (message) => console.log(message.data),
   *   onUnsubscribed: (error) => console.log("removed:", error.message),
   * });
   * await room.ready;
   * ```
   */
  subscribe(name: string, options: SubscribeOptions = {}): Subscription {
    if (this.#state === "closed") throw new Error("the client is closed");
    if (this.#subscriptions.has(name)) throw new Error(`already subscribed to ${name}`);
    const subscription = new ClientSubscription(name, options, this.#owner);
    this.#subscriptions.set(name, subscription);
    subscription.connected();
    return subscription;
  }

  /**
   * Closes the connection for good: no reconnect, every subscription ends
   * (pending `ready` and requests reject). Resolves when the socket is closed.
   *
   * @example
   * ```ts
   * const client = new SharkClient("ws://127.0.0.1:9000/");
   * addEventListener("pagehide", () => client.close());
   * ```
   */
  async close(): Promise<void> {
    if (this.#state !== "closed") this.#finish(1000, "closed by the client");
    await Promise.all(this.#closing);
  }

  #open(): void {
    if (this.#state === "closed") return;
    this.#setState("connecting", "connecting", { attempt: this.#attempt });
    const socket = new (this.#options.WebSocket ?? WebSocket)(this.url);
    const connection = new Connection(socket, this.#options.maxPendingEvents ?? 128);
    this.#connection = connection;
    this.#track(connection);
    const timeout = this.#options.pongTimeout ?? 20_000;
    connection.after(
      "open",
      timeout,
      () => this.#drop(connection, `not open within ${timeout} ms`),
    );
    socket.onopen = () => {
      connection.cancel("open");
      connection.lastFrameAt = Date.now();
      this.#ping(connection);
      this.#authenticate(connection);
    };
    socket.onmessage = (event) => this.#receive(connection, event.data);
    // Deno reports an abnormal closure (no close frame) as 0, browsers as 1006.
    socket.onclose = (event) => this.#lost(connection, event.code || 1006, event.reason);
  }

  async #authenticate(connection: Connection): Promise<void> {
    try {
      if (this.#options.auth) await this.#login(connection, "connect");
    } catch (error) {
      if (this.#connection !== connection) return;
      this.#emit("error", { error: asError(error) });
      return this.#drop(connection, "authentication failed");
    }
    if (this.#connection !== connection) return;
    connection.connectedAt = Date.now();
    this.#setState("connected", "connected", { reconnected: this.#wasConnected });
    this.#wasConnected = true;
    for (const subscription of this.#subscriptions.values()) subscription.connected();
  }

  /** Gets credentials and sends them; resolves on `ok`, throws on a refusal. */
  async #login(connection: Connection, reason: AuthContext["reason"]): Promise<void> {
    const credentials = await this.#options.auth!({ reason });
    if (this.#connection !== connection) return;
    const { promise, resolve, reject } = deferred<void>();
    const frame: JsonObject = credentials.method === "jwt"
      ? { event: ClientEvent.auth, method: "jwt", token: credentials.token }
      : { event: ClientEvent.auth, method: "ticket", ticket: credentials.ticket };
    connection.send([frame], {
      event: ClientEvent.auth,
      count: 1,
      answer: (reply) => reply?.status === "ok" ? resolve() : reject(errorOf(reply!)),
      fail: reject,
    });
    await promise;
    const delay = credentials.method === "jwt"
      ? refreshDelay(credentials.token, this.#options.refreshBefore ?? 30_000)
      : undefined;
    if (delay !== undefined) connection.after("refresh", delay, () => this.#refresh(connection));
  }

  /** A fresh JWT on the open connection; a failure is reported, Shark's 4001 then reconnects. */
  async #refresh(connection: Connection): Promise<void> {
    try {
      await this.#login(connection, "refresh");
    } catch (error) {
      if (this.#connection === connection) this.#emit("error", { error: asError(error) });
    }
  }

  /** Liveness: a ping every interval; nothing received within the timeout drops the connection. */
  #ping(connection: Connection): void {
    const interval = this.#options.pingInterval ?? 25_000;
    const timeout = this.#options.pongTimeout ?? 20_000;
    if (interval <= 0) return;
    let waiting = false;
    let watching = false;
    const tick = () => {
      connection.after("ping", interval, tick);
      if (!waiting) {
        waiting = true;
        const sentAt = Date.now();
        connection.send([{ event: ClientEvent.ping, data: null }], {
          event: ClientEvent.ping,
          count: 1,
          answer: () => {
            waiting = false;
            this.#emit("ping", { rtt: Date.now() - sentAt });
          },
          fail: () => {},
        });
      }
      if (watching) return;
      watching = true;
      const since = Date.now();
      connection.after("pong", timeout, () => {
        watching = false;
        if (connection.lastFrameAt < since) this.#drop(connection, `no pong within ${timeout} ms`);
      });
    };
    connection.after("ping", interval, tick);
  }

  #receive(connection: Connection, text: unknown): void {
    if (this.#connection !== connection) return;
    connection.lastFrameAt = Date.now();
    let frame: JsonObject;
    try {
      frame = JSON.parse(String(text));
    } catch {
      return this.#emit("error", { error: new Error(`not JSON from Shark: ${String(text)}`) });
    }
    if (frame.status !== undefined || frame.event === ServerEvent.pong) {
      if (!connection.answer(frame)) {
        this.#emit("error", { error: errorOf(frame) });
        this.#drop(connection, "unexpected reply");
      }
      return;
    }
    const name = frame.subscription;
    if (typeof name === "string") this.#subscriptions.get(name)?.pushed(frame);
  }

  /** Gives up on a connection without waiting for the closing handshake. */
  #drop(connection: Connection, reason: string): void {
    if (this.#connection !== connection) return;
    connection.socket.close(GAVE_UP, reason);
    this.#lost(connection, GAVE_UP, reason);
  }

  #lost(connection: Connection, code: number, reason: string): void {
    if (this.#connection !== connection) return;
    this.#connection = undefined;
    this.#settle(connection);
    const stable = connection.connectedAt > 0 &&
      Date.now() - connection.connectedAt >= this.#backoff.resetAfter;
    if (stable) this.#attempt = 0;
    if (!reconnects(code)) return this.#finish(code, reason);
    const delay = this.#delay(this.#attempt++);
    this.#setState("disconnected", "disconnected", { code, reason, reconnect: true, delay });
    this.#reconnect = setTimeout(() => this.#open(), delay);
  }

  /** Stops for good. */
  #finish(code: number, reason: string): void {
    const connection = this.#connection;
    this.#connection = undefined;
    clearTimeout(this.#reconnect);
    this.#state = "closed";
    if (connection) {
      connection.socket.close(1000);
      this.#settle(connection);
    }
    const error = new SharkError("the client is closed");
    for (const subscription of [...this.#subscriptions.values()]) subscription.end(error);
    this.#emit("disconnected", { code, reason, reconnect: false, delay: null });
  }

  /** A connection is over: its events fail, its subscriptions wait for the next one. */
  #settle(connection: Connection): void {
    connection.dispose(new SharkError("disconnected before Shark answered"));
    for (const subscription of this.#subscriptions.values()) subscription.disconnected();
  }

  #track(connection: Connection): void {
    const closed = connection.closed.then(() => {
      this.#closing.delete(closed);
    });
    this.#closing.add(closed);
  }

  #delay(attempt: number): number {
    const { min, max } = this.#backoff;
    const cap = Math.min(max, min * 2 ** attempt, MAX_TIMER);
    return Math.round((this.#options.random ?? Math.random)() * cap);
  }

  #setState<K extends keyof SharkClientEventMap>(
    state: ConnectionState,
    type: K,
    detail: SharkClientEventMap[K],
  ): void {
    this.#state = state;
    this.#emit(type, detail);
  }

  #emit<K extends keyof SharkClientEventMap>(type: K, detail: SharkClientEventMap[K]): void {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
