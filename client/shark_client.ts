/**
 * The client itself: the connection's life (connect, authenticate, route
 * what Shark sends, reconnect with backoff, close for good), its events, and
 * the subscriptions it holds across reconnects.
 *
 * @module
 */
import { ServerEvent } from "../src/protocol.ts";
import { type AuthSession, login } from "./auth.ts";
import { type Clock, SYSTEM_CLOCK } from "./clock.ts";
import { Connection, GAVE_UP } from "./connection.ts";
import { asError, errorOf, SharkError } from "./errors.ts";
import { watchLiveness } from "./liveness.ts";
import type { BackoffOptions, SharkClientOptions, SubscribeOptions } from "./options.ts";
import { backoffDelay, DEFAULT_BACKOFF, reconnects } from "./reconnect.ts";
import { ClientSubscription, type Owner } from "./subscription.ts";
import type { ConnectionState, JsonObject, SharkClientEventMap, Subscription } from "./types.ts";

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
  readonly #auth: AuthSession | undefined;
  readonly #clock: Clock;
  #state: ConnectionState = "connecting";
  #connection: Connection | undefined;
  #attempt = 0;
  #reconnect: unknown;
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
    this.#clock = options.clock ?? SYSTEM_CLOCK;
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
      clock: this.#clock,
    };
    this.#auth = options.auth && {
      auth: options.auth,
      refreshBefore: options.refreshBefore ?? 30_000,
      current: (connection) => this.#connection === connection,
      report: (error) => this.#emit("error", { error }),
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
    const connection = new Connection(
      socket,
      this.#options.maxPendingEvents ?? 128,
      this.#clock,
    );
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
      connection.lastFrameAt = this.#clock.now();
      watchLiveness(connection, {
        interval: this.#options.pingInterval ?? 25_000,
        timeout,
        onPong: (rtt) => this.#emit("ping", { rtt }),
        onDead: (reason) => this.#drop(connection, reason),
      });
      this.#authenticate(connection);
    };
    socket.onmessage = (event) => this.#receive(connection, event.data);
    // Deno reports an abnormal closure (no close frame) as 0, browsers as 1006.
    socket.onclose = (event) => this.#lost(connection, event.code || 1006, event.reason);
  }

  async #authenticate(connection: Connection): Promise<void> {
    try {
      if (this.#auth) await login(this.#auth, connection, "connect");
    } catch (error) {
      if (this.#connection !== connection) return;
      this.#emit("error", { error: asError(error) });
      return this.#drop(connection, "authentication failed");
    }
    if (this.#connection !== connection) return;
    connection.connectedAt = this.#clock.now();
    this.#setState("connected", "connected", { reconnected: this.#wasConnected });
    this.#wasConnected = true;
    for (const subscription of this.#subscriptions.values()) subscription.connected();
  }

  #receive(connection: Connection, text: unknown): void {
    if (this.#connection !== connection) return;
    connection.lastFrameAt = this.#clock.now();
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
      this.#clock.now() - connection.connectedAt >= this.#backoff.resetAfter;
    if (stable) this.#attempt = 0;
    if (!reconnects(code)) return this.#finish(code, reason);
    const delay = this.#delay(this.#attempt++);
    this.#setState("disconnected", "disconnected", { code, reason, reconnect: true, delay });
    this.#reconnect = this.#clock.setTimeout(() => this.#open(), delay);
  }

  /** Stops for good. */
  #finish(code: number, reason: string): void {
    const connection = this.#connection;
    this.#connection = undefined;
    this.#clock.clearTimeout(this.#reconnect);
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
    return backoffDelay(attempt, this.#backoff, this.#options.random ?? Math.random);
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
