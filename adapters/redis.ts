/**
 * The Redis pub/sub adapter: any number of Shark nodes share one Redis, and
 * publishers keep doing what SocketShark services do today,
 * `PUBLISH <channel_prefix><subscription> <envelope JSON>`.
 *
 * Guarantees, as Redis pub/sub gives them:
 * - **at-most-once**: Redis keeps nothing for a subscriber that is away, so a
 *   payload published while a connection is down is lost. That is why a loss
 *   is reported at once through `health(false)`: the engine closes every
 *   session with 1012 and clients come back for fresh state.
 * - **order per channel**: one subscriber connection per Redis server
 *   carries every topic, and Redis delivers the messages of a channel on it in
 *   publish order. SUBSCRIBE and UNSUBSCRIBE go out on that same connection in
 *   call order.
 * - **no gap after subscribe**: `subscribe()` resolves only once Redis has
 *   confirmed the SUBSCRIBE (on every configured server).
 * - **resubscribe on reconnect**: a lost connection is replaced by a fresh one
 *   (capped exponential backoff with jitter); every topic still wanted is
 *   subscribed again before `health(true)` is reported.
 * - **no silent stall**: each subscriber connection is pinged every
 *   `ping_interval` seconds; no reply within `ping_timeout`, a connection
 *   error or a dropped connection (the publisher's included) counts as a loss.
 *
 * `redis_alt` (a second server with its own `channel_prefix`, for migrations)
 * is subscribed in parallel; it is as essential as the main server, since a
 * message published there while it is away would be lost too. Publishing
 * goes to the main server only.
 *
 * Topic history (SPEC section 10) lives on the main server too, kept by the
 * script of `redis_history.ts`, run on the publisher connection.
 *
 * @module
 */
import { getLogger, type Logger } from "@logtape/logtape";
import { createClient } from "@redis/client";
import type { SharkConfig } from "../src/config.ts";
import type { PubSub, PubSubListener } from "../src/pubsub.ts";
import { redactUrl } from "../src/redact.ts";
import { redisUrlProblem } from "../src/redis_url.ts";
import { delay } from "../src/util.ts";
import { RedisHistory } from "./redis_history.ts";

export { historyKeys, type RedisCommand, RedisHistory } from "./redis_history.ts";

/**
 * The `pubsub` section of a validated configuration, as the adapter reads it:
 * `channel_prefix`, `redis` and `redis_alt` (secrets already resolved).
 *
 * @example
 * ```ts
 * import { loadConfig } from "../mod.ts";
 * import type { RedisPubSubOptions } from "./redis.ts";
 *
 * const options: RedisPubSubOptions = loadConfig({
 *   pubsub: {
 *     adapter: "redis",
 *     channel_prefix: "shark:",
 *     redis: { url: { env: "REDIS_URL" }, ping_interval: 10, ping_timeout: 5 },
 *   },
 * }, (name) => Deno.env.get(name)).pubsub;
 * ```
 */
export type RedisPubSubOptions = SharkConfig["pubsub"];

/** Settings of a {@link RedisPubSub} that do not come from the configuration. */
export interface RedisPubSubSettings {
  /**
   * Where the adapter logs connects, losses and reconnects; defaults to
   * LogTape's `["shark", "redis"]` category.
   */
  readonly logger?: Logger;
}

/**
 * Bounds connecting and resubscribing: a server that accepts the TCP
 * connection but does not answer must not hold start-up or a reconnect forever.
 */
const CONNECT_TIMEOUT_MS = 5000;
/** A ping deadline firing later than this means the event loop was stalled. */
const STALL_TOLERANCE_MS = 20;
/** How many times a late ping deadline is given grace before Redis counts as lost. */
const MAX_STALL_GRACES = 3;
/** The first reconnect waits about this long; each failed attempt doubles it. */
const BACKOFF_FIRST_MS = 100;
/** Reconnect attempts are never further apart than this (before jitter). */
const BACKOFF_MAX_MS = 5000;
/** A failed reconnect attempt is logged as a warning once per this many. */
const RECONNECT_WARN_EVERY = 10;

type ServerLabel = "redis" | "redis_alt";

interface ServerOptions {
  readonly label: ServerLabel;
  readonly url: string;
  readonly prefix: string;
  readonly pingIntervalMs: number;
  readonly pingTimeoutMs: number;
  /** Whether this server also gets the publisher connection. */
  readonly publishes: boolean;
}

/**
 * RESP2 works with every Redis version SocketShark users run (RESP3 needs
 * HELLO, Redis 6+), and the client answers PING on a subscribed RESP2
 * connection. The client's own reconnect is off: a lost connection is
 * replaced by a fresh client, so no stale queue or subscription state
 * survives a loss, and every step of the recovery is ours to bound.
 */
function newClient(url: string) {
  return createClient({
    url,
    RESP: 2,
    disableOfflineQueue: true,
    socket: { connectTimeout: CONNECT_TIMEOUT_MS, reconnectStrategy: false },
  });
}

type RedisClient = ReturnType<typeof newClient>;

function errorText(error: unknown): string {
  if (error instanceof AggregateError && !error.message) {
    return error.errors.map(errorText).join("; ") || "connection failed";
  }
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

function backoff(attempt: number): number {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt);
  return base * (0.5 + Math.random());
}

/** What a {@link Link} needs of the adapter that owns it. */
interface LinkOwner {
  readonly log: Logger;
  /** Topics to subscribe on a fresh connection. */
  wanted(): Iterable<string>;
  message(topic: string, payload: string): void;
  lost(link: Link, reason: string): void;
  restored(link: Link): void;
}

/**
 * The connections to one Redis server: the subscriber (and, for the main
 * server, the publisher), their pings, and their reconnect loop.
 */
class Link {
  readonly options: ServerOptions;
  /** The URL without its password, for logs and errors. */
  readonly display: string;
  /** Connected, every wanted topic subscribed, pings running. */
  up = false;
  readonly #owner: LinkOwner;
  /** Bumped whenever the current clients are given up, so that late events of old ones are ignored. */
  #generation = 0;
  #subscriber: RedisClient | undefined;
  #publisher: RedisClient | undefined;
  #clients: RedisClient[] = [];
  #pingTimer: ReturnType<typeof setTimeout> | undefined;
  #pingDeadline: ReturnType<typeof setTimeout> | undefined;
  #reconnecting: Promise<void> | undefined;
  readonly #stop = new AbortController();

  constructor(options: ServerOptions, owner: LinkOwner) {
    this.options = options;
    this.display = redactUrl(options.url);
    this.#owner = owner;
  }

  /** One connection attempt: connect, subscribe every wanted topic, PING, start pinging. */
  async open(): Promise<void> {
    const generation = ++this.#generation;
    const subscriber = newClient(this.options.url);
    const publisher = this.options.publishes ? newClient(this.options.url) : undefined;
    this.#clients = publisher ? [subscriber, publisher] : [subscriber];
    for (const client of this.#clients) {
      // An 'error' event without a listener would crash the process.
      client.on("error", (error: unknown) => this.#fail(generation, errorText(error)));
    }
    try {
      const seconds = CONNECT_TIMEOUT_MS / 1000;
      await withTimeout(
        Promise.all(this.#clients.map((client) => client.connect())),
        CONNECT_TIMEOUT_MS,
        `no answer within ${seconds} s`,
      );
      this.#check(generation);
      // From here on, unsubscribe() reaches this connection, after the SUBSCRIBE below.
      this.#subscriber = subscriber;
      const channels = [...this.#owner.wanted()].map((topic) => this.options.prefix + topic);
      if (channels.length > 0) {
        await withTimeout(
          subscriber.subscribe(channels, this.#onMessage),
          CONNECT_TIMEOUT_MS,
          `SUBSCRIBE not confirmed within ${seconds} s`,
        );
      }
      this.#check(generation);
      // A paused or stalled server may still accept connections and answer
      // the handshake: only a PING proves it serves commands again.
      await withTimeout(
        Promise.all(this.#clients.map((client) => client.ping())),
        this.options.pingTimeoutMs,
        `no PING reply within ${this.options.pingTimeoutMs / 1000} s`,
      );
      this.#check(generation);
    } catch (error) {
      if (generation === this.#generation) this.#drop();
      throw error;
    }
    this.#publisher = publisher;
    this.up = true;
    this.#schedulePing(generation);
  }

  /** SUBSCRIBEs `topic`; resolves once Redis confirmed it. */
  subscribe(topic: string): Promise<void> {
    if (!this.up || !this.#subscriber) {
      return Promise.reject(new Error(`${this.options.label} ${this.display} is down`));
    }
    return this.#subscriber.subscribe(this.options.prefix + topic, this.#onMessage);
  }

  /** UNSUBSCRIBEs `topic` on a live connection; a lost one has forgotten it anyway. */
  async unsubscribe(topic: string): Promise<void> {
    const subscriber = this.#subscriber;
    if (!subscriber) return;
    try {
      await subscriber.unsubscribe(this.options.prefix + topic, this.#onMessage);
    } catch (error) {
      this.#owner.log.debug("{server} UNSUBSCRIBE {topic} failed: {error}", {
        server: this.options.label,
        topic,
        error: errorText(error),
      });
    }
  }

  /** PUBLISHes on the publisher connection; resolves with the receiver count. */
  publish(topic: string, payload: string): Promise<number> {
    if (!this.up || !this.#publisher) {
      return Promise.reject(new Error(`${this.options.label} ${this.display} is down`));
    }
    return this.#publisher.publish(this.options.prefix + topic, payload);
  }

  /** Runs a command on the publisher connection. */
  command(args: readonly string[]): Promise<unknown> {
    if (!this.up || !this.#publisher) {
      return Promise.reject(new Error(`${this.options.label} ${this.display} is down`));
    }
    return this.#publisher.sendCommand([...args]);
  }

  /** Stops pings and reconnects and disconnects every client. */
  async close(): Promise<void> {
    this.#stop.abort();
    this.#drop();
    await this.#reconnecting;
  }

  readonly #onMessage = (payload: string, channel: string): void => {
    this.#owner.message(channel.slice(this.options.prefix.length), payload);
  };

  #check(generation: number): void {
    if (generation !== this.#generation) throw new Error("connection lost while connecting");
    if (this.#stop.signal.aborted) throw new Error("closed");
  }

  /** Gives up the current clients; pending commands on them reject. */
  #drop(): void {
    this.#generation++;
    this.up = false;
    clearTimeout(this.#pingTimer);
    clearTimeout(this.#pingDeadline);
    this.#subscriber = undefined;
    this.#publisher = undefined;
    for (const client of this.#clients) {
      try {
        client.destroy();
      } catch (error) {
        this.#owner.log.debug("destroying a redis client failed: {error}", {
          error: errorText(error),
        });
      }
    }
    this.#clients = [];
  }

  #fail(generation: number, reason: string): void {
    if (generation !== this.#generation) return;
    const wasUp = this.up;
    this.#drop();
    // While open() runs, its caller sees the failure through the rejected commands.
    if (!wasUp || this.#stop.signal.aborted) return;
    this.#owner.lost(this, reason);
    this.#reconnecting ??= this.#reconnect().finally(() => this.#reconnecting = undefined);
  }

  #schedulePing(generation: number): void {
    const { pingIntervalMs, pingTimeoutMs } = this.options;
    this.#pingTimer = setTimeout(() => {
      const subscriber = this.#subscriber;
      if (generation !== this.#generation || !subscriber) return;
      this.#armPingDeadline(generation, pingTimeoutMs, 0);
      subscriber.ping().then(
        () => {
          if (generation !== this.#generation) return;
          clearTimeout(this.#pingDeadline);
          this.#schedulePing(generation);
        },
        (error: unknown) => this.#fail(generation, `PING failed: ${errorText(error)}`),
      );
    }, pingIntervalMs);
  }

  /**
   * Fails the link when no PING reply came within `ms`, unless the deadline
   * itself fired late: then this process was stalled (a long burst, a GC),
   * not Redis, and the reply may be waiting unread. A late deadline gets a
   * grace period of twice its lateness, at most {@link MAX_STALL_GRACES} times,
   * so that a busy Shark never mistakes its own stall for a lost Redis.
   */
  #armPingDeadline(generation: number, ms: number, graces: number): void {
    const armedAt = performance.now();
    this.#pingDeadline = setTimeout(() => {
      const late = performance.now() - armedAt - ms;
      if (late > STALL_TOLERANCE_MS && graces < MAX_STALL_GRACES) {
        this.#armPingDeadline(generation, Math.max(2 * late, STALL_TOLERANCE_MS), graces + 1);
        return;
      }
      this.#fail(generation, `no PING reply within ${this.options.pingTimeoutMs / 1000} s`);
    }, ms);
  }

  async #reconnect(): Promise<void> {
    const signal = this.#stop.signal;
    for (let attempt = 0; !signal.aborted; attempt++) {
      await delay(backoff(attempt), signal);
      if (signal.aborted) return;
      try {
        await this.open();
      } catch (error) {
        // Every tenth failure is a warning, so that a long outage stays visible without flooding.
        const level = attempt % RECONNECT_WARN_EVERY === 0 ? "warn" : "debug";
        this.#owner.log[level]("{server} {url}: reconnect attempt {attempt} failed: {error}", {
          server: this.options.label,
          url: this.display,
          attempt: attempt + 1,
          error: errorText(error),
        });
        continue;
      }
      this.#owner.restored(this);
      return;
    }
  }
}

/**
 * Pub/sub through Redis, SocketShark-compatible: what a publisher sends with
 * `PUBLISH <channel_prefix><subscription> <envelope JSON>` reaches the
 * subscribed clients of every Shark node, and `POST /publish` or
 * `shark.publish()` on one node reaches all of them.
 *
 * @example
 * ```ts
 * import { loadConfig, Shark } from "../mod.ts";
 * import { RedisPubSub } from "./redis.ts";
 *
 * const config = loadConfig({
 *   pubsub: { adapter: "redis", redis: { url: "redis://127.0.0.1:6379/0" } },
 *   services: { books: { require_authentication: false } },
 * });
 * const shark = new Shark(config, { pubsub: new RedisPubSub(config.pubsub) });
 * await shark.started; // rejects when Redis cannot be reached
 * Deno.serve((request) => shark.handle(request));
 * ```
 */
export class RedisPubSub implements PubSub {
  /** `redis`, for logs and `/healthz`. */
  readonly name = "redis";
  /** Topic history in the main server, shared by every node on it. */
  readonly history: RedisHistory;
  readonly #links: Link[];
  readonly #main: Link;
  readonly #wanted = new Map<string, object>();
  readonly #log: Logger;
  readonly #problem: string | undefined;
  #listener: PubSubListener | undefined;
  /** What the listener was last told; `health(false)` is reported once per loss. */
  #healthy = false;
  #lostReason = "not started";
  #closed = false;

  /**
   * @param options the `pubsub` section of a validated configuration
   *   (`channel_prefix`, `redis`, `redis_alt`).
   * @param settings what does not come from the configuration (the logger).
   *
   * @example
   * ```ts
   * import { loadConfig } from "../mod.ts";
   * import { RedisPubSub } from "./redis.ts";
   *
   * const pubsub = new RedisPubSub(loadConfig({ pubsub: { adapter: "redis" } }).pubsub);
   * ```
   */
  constructor(options: RedisPubSubOptions, settings: RedisPubSubSettings = {}) {
    this.#log = settings.logger ?? getLogger(["shark", "redis"]);
    const server = (
      label: ServerLabel,
      redis: RedisPubSubOptions["redis"],
      prefix: string,
    ): ServerOptions => ({
      label,
      url: redis.url,
      prefix,
      pingIntervalMs: redis.ping_interval * 1000,
      pingTimeoutMs: redis.ping_timeout * 1000,
      publishes: label === "redis",
    });
    const owner: LinkOwner = {
      log: this.#log,
      wanted: () => this.#wanted.keys(),
      message: (topic, payload) => this.#listener?.message(topic, payload),
      lost: (link, reason) => this.#lost(link, reason),
      restored: (link) => this.#restored(link),
    };
    this.#main = new Link(server("redis", options.redis, options.channel_prefix), owner);
    this.history = new RedisHistory((args) => this.#command(args), options.channel_prefix);
    this.#links = [this.#main];
    if (options.redis_alt) {
      const alt = options.redis_alt;
      this.#links.push(new Link(server("redis_alt", alt, alt.channel_prefix), owner));
    }
    for (const link of this.#links) {
      const problem = redisUrlProblem(link.options.url);
      if (problem) {
        this.#problem ??= `pubsub.${link.options.label}.url ${link.display}: ${problem}`;
      }
    }
  }

  /** Whether every configured server is connected with every wanted topic subscribed. */
  get healthy(): boolean {
    return this.#healthy;
  }

  /**
   * Connects to every configured server (one attempt each, bounded by a
   * connect timeout). Rejects with `cannot connect to URL: reason` when one
   * cannot be reached; nothing is left open then. A server that was reached
   * but lost again while another was still connecting leaves the adapter
   * unhealthy; `health(true)` follows once it is back.
   */
  async start(listener: PubSubListener): Promise<void> {
    if (this.#problem) throw new Error(this.#problem);
    if (this.#closed) throw new Error("the redis adapter is closed");
    this.#listener = listener;
    const results = await Promise.allSettled(this.#links.map((link) => link.open()));
    const failed = results.findIndex((result) => result.status === "rejected");
    if (failed >= 0) {
      await Promise.all(this.#links.map((link) => link.close()));
      this.#listener = undefined;
      const link = this.#links[failed];
      const suffix = link.options.label === "redis" ? "" : ` (${link.options.label})`;
      const reason = errorText((results[failed] as PromiseRejectedResult).reason);
      throw new Error(`cannot connect to ${link.display}${suffix}: ${reason}`);
    }
    for (const link of this.#links) {
      this.#log.info("{server} connected: {url}", {
        server: link.options.label,
        url: link.display,
      });
    }
    // A server may have been lost again while another was still connecting:
    // its loss was not reported (nothing was healthy yet), and its reconnect
    // loop reports it back through restored().
    const down = this.#links.find((link) => !link.up);
    if (down) this.#lostReason = `${down.options.label} ${down.display}: lost while starting`;
    this.#healthy = !this.#closed && !down;
  }

  /**
   * SUBSCRIBEs `<channel_prefix><topic>` on every configured server; resolves
   * once each confirmed it. Rejects at once while Redis is unavailable.
   */
  async subscribe(topic: string): Promise<void> {
    if (!this.#healthy) throw this.#unavailable();
    const token = {};
    this.#wanted.set(topic, token);
    try {
      await Promise.all(this.#links.map((link) => link.subscribe(topic)));
    } catch (error) {
      // The engine forgets a topic whose subscribe failed: so must every server.
      if (this.#wanted.get(topic) === token) {
        this.#wanted.delete(topic);
        await Promise.all(this.#links.map((link) => link.unsubscribe(topic)));
      }
      throw new Error(`redis SUBSCRIBE ${topic} failed: ${errorText(error)}`);
    }
  }

  /**
   * UNSUBSCRIBEs `<channel_prefix><topic>`. Never rejects: a server that is
   * down forgot the subscription with its connection, and the topic is no
   * longer subscribed again on reconnect.
   */
  async unsubscribe(topic: string): Promise<void> {
    this.#wanted.delete(topic);
    await Promise.all(this.#links.map((link) => link.unsubscribe(topic)));
  }

  /**
   * PUBLISHes `payload` to `<channel_prefix><topic>` on the main server.
   * Rejects at once while Redis is unavailable.
   */
  async publish(topic: string, payload: string): Promise<void> {
    if (!this.#healthy) throw this.#unavailable();
    try {
      await this.#main.publish(topic, payload);
    } catch (error) {
      throw new Error(`redis PUBLISH ${topic} failed: ${errorText(error)}`);
    }
  }

  /** Stops pings and reconnect loops and disconnects every client. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#healthy = false;
    this.#lostReason = "closed";
    this.#listener = undefined;
    this.#wanted.clear();
    await Promise.all(this.#links.map((link) => link.close()));
  }

  /** A command on the main server's publisher connection; rejects at once while Redis is unavailable. */
  async #command(args: readonly string[]): Promise<unknown> {
    if (!this.#healthy) throw this.#unavailable();
    return await this.#main.command(args);
  }

  #unavailable(): Error {
    return new Error(`redis is unavailable: ${this.#lostReason}`);
  }

  #lost(link: Link, reason: string): void {
    if (this.#closed) return;
    const where = `${link.options.label} ${link.display}`;
    this.#log.warn("{server} {url} lost ({reason}): reconnecting", {
      server: link.options.label,
      url: link.display,
      reason,
    });
    if (!this.#healthy) return;
    this.#healthy = false;
    this.#lostReason = `${where}: ${reason}`;
    this.#listener?.health(false, this.#lostReason);
  }

  #restored(link: Link): void {
    if (this.#closed) return;
    this.#log.info("{server} {url} reconnected, {count} topics subscribed again", {
      server: link.options.label,
      url: link.display,
      count: this.#wanted.size,
    });
    if (this.#healthy || !this.#links.every((each) => each.up)) return;
    this.#healthy = true;
    this.#listener?.health(true);
  }
}
