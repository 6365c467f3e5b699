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
 * script of `redis_history.ts`, run on the publisher connection; so does
 * presence (SPEC section 12), kept by the script of `redis_presence.ts`.
 *
 * Each server is reached through a {@link RedisLink} (`redis_link.ts`), which
 * owns its connections, pings, reconnects and resubscribes; this module maps
 * topics to links and the links' losses and recoveries to the engine's health.
 *
 * @module
 */
import { getLogger, type Logger } from "@logtape/logtape";
import type { SharkConfig } from "../src/config/config.ts";
import type { PubSub, PubSubListener } from "../src/pubsub/pubsub.ts";
import { redisUrlProblem } from "../src/config/redis_url.ts";
import { errorText } from "./redis_client.ts";
import { RedisHistory } from "./redis_history.ts";
import { RedisPresence } from "./redis_presence.ts";
import { RedisLink, type RedisLinkOptions, type RedisLinkOwner } from "./redis_link.ts";

export { historyKeys, type RedisCommand, RedisHistory } from "./redis_history.ts";
export { presenceKeys, RedisPresence } from "./redis_presence.ts";
export { RedisClusterPubSub } from "./redis_cluster.ts";

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

type ServerLabel = "redis" | "redis_alt";
type RedisServerConfig = Pick<
  RedisPubSubOptions["redis"],
  "url" | "ping_interval" | "ping_timeout"
>;

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
  /** Presence in the main server, shared by every node on it; this adapter is one node. */
  readonly presence: RedisPresence;
  readonly #links: RedisLink[];
  readonly #main: RedisLink;
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
      redis: RedisServerConfig,
      prefix: string,
    ): RedisLinkOptions => ({
      label,
      url: redis.url,
      prefix,
      pingIntervalMs: redis.ping_interval * 1000,
      pingTimeoutMs: redis.ping_timeout * 1000,
      publishes: label === "redis",
      // sharded is a key of the main server; redis_alt stays a classic one.
      sharded: label === "redis" && options.redis.sharded,
    });
    const owner: RedisLinkOwner = {
      log: this.#log,
      wanted: () => this.#wanted.keys(),
      message: (topic, payload) => this.#listener?.message(topic, payload),
      lost: (link, reason) => this.#lost(link, reason),
      restored: (link) => this.#restored(link),
    };
    this.#main = new RedisLink(server("redis", options.redis, options.channel_prefix), owner);
    const sharded = { sharded: options.redis.sharded };
    const send = (args: readonly string[]) => this.#command(args);
    this.history = new RedisHistory(send, options.channel_prefix, sharded);
    this.presence = new RedisPresence(send, options.channel_prefix, undefined, sharded);
    this.#links = [this.#main];
    if (options.redis_alt) {
      const alt = options.redis_alt;
      this.#links.push(new RedisLink(server("redis_alt", alt, alt.channel_prefix), owner));
    }
    if (options.redis.cluster !== null) {
      this.#problem =
        "pubsub.redis.cluster is set: a Redis Cluster is served by RedisClusterPubSub";
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

  #lost(link: RedisLink, reason: string): void {
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
    // Every session closes now, and removing their members fails while Redis is away.
    this.presence.renewNode();
    this.#listener?.health(false, this.#lostReason);
  }

  #restored(link: RedisLink): void {
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
