/**
 * The Redis Cluster pub/sub adapter (SPEC section 14): one {@link RedisLink}
 * per primary (its publisher runs the scripts and publishes of the slots it
 * serves), topics mapped to slots by `keySlot` and slots to primaries by the
 * slot map (`redis_slots.ts`).
 *
 * - `sharded: false`: classic SUBSCRIBE/PUBLISH, which the cluster copies to
 *   every node; every topic is subscribed on one primary's link.
 * - `sharded: true`: SSUBSCRIBE/SPUBLISH on the primary serving the topic's
 *   slot, one SSUBSCRIBE per slot; history and presence SPUBLISH too.
 *
 * The slot map is read at start, again every `ping_interval`, on a `MOVED`
 * reply, after a server-side unsubscribe and while a link is lost. A topic
 * whose slot changed hands is subscribed on its new owner at once, then
 * unsubscribed on the old one, and reported `resubscribed` (history topics
 * are caught up). A lost link is a lost shard (SPEC section 14): its topics
 * are reported `lost`, the adapter is not `healthy` (`/healthz` 503) until
 * every slot is served again, subscribes and publishes to its slots are
 * refused, and the other shards go on. In classic mode the subscribing link
 * holds every topic, and they move to another primary at once.
 *
 * @module
 */
import { getLogger, type Logger } from "@logtape/logtape";
import { PublishOutcomeUnknown, type PubSub, type PubSubListener } from "../src/pubsub/pubsub.ts";
import { REAL_CLOCK } from "../src/clock.ts";
import { redactUrl } from "../src/config/redact.ts";
import { CONNECT_TIMEOUT_MS, errorText, outcome } from "./redis_client.ts";
import { RedisHistory } from "./redis_history.ts";
import { keySlot } from "./redis_keys.ts";
import { RedisLink, type RedisLinkOwner } from "./redis_link.ts";
import { RedisPresence } from "./redis_presence.ts";
import { readSlotMap, type SlotMap } from "./redis_slots.ts";
import type { RedisPubSubOptions, RedisPubSubSettings } from "./redis.ts";

/** While a link is lost, the slot map is read again this often, for the promotion. */
const LOST_REFRESH_MS = 250;

/**
 * Pub/sub through a Redis Cluster.
 *
 * @example
 * ```ts
 * import { loadConfig, Shark } from "../mod.ts";
 * import { RedisClusterPubSub } from "./redis_cluster.ts";
 *
 * const config = loadConfig({
 *   pubsub: { adapter: "redis", redis: { cluster: ["redis://127.0.0.1:7000"], sharded: true } },
 *   services: { books: { require_authentication: false } },
 * });
 * const shark = new Shark(config, { pubsub: new RedisClusterPubSub(config.pubsub) });
 * ```
 */
export class RedisClusterPubSub implements PubSub {
  /** `redis`, for logs and `/healthz`. */
  readonly name = "redis";
  /** Topic history, each topic's keys on the primary serving its slot. */
  readonly history: RedisHistory;
  /** Presence, each topic's keys on the primary serving its slot. */
  readonly presence: RedisPresence;
  readonly #options: RedisPubSubOptions;
  readonly #seeds: readonly string[];
  readonly #sharded: boolean;
  readonly #log: Logger;
  readonly #links = new Map<string, RedisLink>();
  /** Wanted topics and the link each is subscribed on. */
  readonly #placed = new Map<string, RedisLink | undefined>();
  #map: SlotMap | undefined;
  #listener: PubSubListener | undefined;
  #healthy = false;
  #lostReason = "not started";
  #closed = false;
  #refreshTimer: unknown;
  #refreshing: Promise<void> | undefined;

  /**
   * @param options the `pubsub` section of a validated configuration with
   *   `redis.cluster` set.
   * @param settings what does not come from the configuration (the logger).
   */
  constructor(options: RedisPubSubOptions, settings: RedisPubSubSettings = {}) {
    if (!options.redis.cluster) throw new Error("pubsub.redis.cluster is not set");
    this.#options = options;
    this.#seeds = options.redis.cluster;
    this.#sharded = options.redis.sharded;
    this.#log = settings.logger ?? getLogger(["shark", "redis"]);
    const sharded = { sharded: this.#sharded };
    const send = (args: readonly string[]) => this.#command(args);
    this.history = new RedisHistory(send, options.channel_prefix, sharded);
    this.presence = new RedisPresence(send, options.channel_prefix, undefined, sharded);
  }

  /** Whether every primary is connected with every wanted topic subscribed on its owner. */
  get healthy(): boolean {
    return this.#healthy;
  }

  /**
   * Reads the slot map from the first seed that answers and connects to
   * every primary; rejects naming the seeds when none answers.
   */
  async start(listener: PubSubListener): Promise<void> {
    if (this.#closed) throw new Error("the redis adapter is closed");
    this.#map = await readSlotMap(this.#seeds, CONNECT_TIMEOUT_MS, REAL_CLOCK);
    this.#listener = listener;
    const urls = this.#map.primaries;
    const opened = await Promise.allSettled(urls.map((url) => this.#link(url).open()));
    const failed = opened.flatMap((result, index) => result.status === "rejected" ? [index] : []);
    if (failed.length === urls.length) {
      const reason = (opened[0] as PromiseRejectedResult).reason;
      await this.close();
      throw new Error(`cannot connect to the Redis Cluster: ${errorText(reason)}`);
    }
    // A primary that does not answer yet is a lost shard: the map is read again until it is served.
    for (const index of failed) this.#links.delete(urls[index]);
    this.#log.info("redis cluster connected: {up} of {primaries} primaries, {mode}", {
      up: urls.length - failed.length,
      primaries: urls.length,
      mode: this.#sharded ? "sharded" : "classic",
    });
    this.#healthy = failed.length === 0;
    this.#lostReason = `${failed.length} primaries do not answer`;
    this.#scheduleRefresh(this.#healthy ? this.#options.redis.ping_interval * 1000 : 0);
  }

  /** Subscribes `topic` on the primary serving its slot (sharded) or the subscribing primary. */
  async subscribe(topic: string): Promise<void> {
    const link = this.#ownerLink(topic);
    if (!link?.up) throw new Error(`redis is unavailable: ${this.#lostReason}`);
    this.#placed.set(topic, link);
    try {
      await link.subscribe(topic);
    } catch (error) {
      if (this.#placed.get(topic) === link) {
        this.#placed.delete(topic);
        await link.unsubscribe(topic);
      }
      this.#refreshSoon();
      throw new Error(`redis SUBSCRIBE ${topic} failed: ${errorText(error)}`);
    }
  }

  /** Unsubscribes `topic`; never rejects. */
  async unsubscribe(topic: string): Promise<void> {
    const link = this.#placed.get(topic);
    this.#placed.delete(topic);
    await link?.unsubscribe(topic);
  }

  /** Publishes on the primary serving the topic's slot (SPUBLISH when sharded). */
  async publish(topic: string, payload: string): Promise<void> {
    try {
      // A classic PUBLISH reaches every node from any node: the subscribing one is up.
      const link = this.#ownerLink(topic);
      if (!link?.up) throw new Error(`the primary of ${topic} is down`);
      await link.publish(topic, payload).catch(outcome);
    } catch (error) {
      this.#refreshOnMoved(error);
      const message = `redis PUBLISH ${topic} failed: ${errorText(error)}`;
      throw error instanceof PublishOutcomeUnknown
        ? new PublishOutcomeUnknown(message)
        : new Error(message);
    }
  }

  /** Stops refreshing and closes every link. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#healthy = false;
    this.#lostReason = "closed";
    this.#listener = undefined;
    REAL_CLOCK.clearTimeout(this.#refreshTimer);
    this.#placed.clear();
    await this.#refreshing;
    await Promise.all([...this.#links.values()].map((link) => link.close()));
    this.#links.clear();
  }

  /**
   * A script or `SCRIPT LOAD`: a script runs on the primary serving its
   * first key's slot; `SCRIPT` goes to every primary.
   */
  async #command(args: readonly string[]): Promise<unknown> {
    try {
      if (args[0] === "SCRIPT") {
        return (await Promise.all([...this.#links.values()].map((link) => link.command(args))))[0];
      }
      const key = args[0] === "EVALSHA" || args[0] === "EVAL" ? args[3] : args[1];
      const link = this.#slotLink(keySlot(key));
      if (!link?.up) throw new Error(`the primary of slot ${keySlot(key)} is down`);
      return await link.command(args).catch(outcome);
    } catch (error) {
      this.#refreshOnMoved(error);
      throw error;
    }
  }

  #slotLink(slot: number): RedisLink | undefined {
    const url = this.#map?.owners[slot];
    return url === undefined ? undefined : this.#links.get(url);
  }

  /**
   * Where `topic` is subscribed: its slot's primary when sharded, else the
   * primary holding every topic (the first that is up, staying on it while
   * it is).
   */
  #ownerLink(topic: string): RedisLink | undefined {
    if (this.#sharded) return this.#slotLink(keySlot(this.#options.channel_prefix + topic));
    const links = (this.#map?.primaries ?? []).flatMap((url) => this.#links.get(url) ?? []);
    const current = [...this.#placed.values()].find((link) => link?.up && links.includes(link));
    return current ?? links.find((each) => each.up) ?? links[0];
  }

  #link(url: string): RedisLink {
    let link = this.#links.get(url);
    if (link) return link;
    const owner: RedisLinkOwner = {
      log: this.#log,
      wanted: () => this.#wantedOn(link!),
      message: (topic, payload) => this.#listener?.message(topic, payload),
      lost: (_, reason) => this.#lost(link!, reason),
      restored: () => {
        this.#listener?.resubscribed?.([...this.#wantedOn(link!)]);
        this.#refreshSoon();
      },
      moved: (_, topic) => this.#moved(link!, topic),
    };
    const redis = this.#options.redis;
    link = new RedisLink({
      label: "redis",
      url,
      prefix: this.#options.channel_prefix,
      pingIntervalMs: redis.ping_interval * 1000,
      pingTimeoutMs: redis.ping_timeout * 1000,
      publishes: true,
      sharded: this.#sharded,
    }, owner);
    this.#links.set(url, link);
    return link;
  }

  *#wantedOn(link: RedisLink): Iterable<string> {
    for (const [topic, placed] of this.#placed) if (placed === link) yield topic;
  }

  #lost(link: RedisLink, reason: string): void {
    if (this.#closed) return;
    this.#log.warn("redis cluster primary {url} lost ({reason})", { url: link.display, reason });
    this.#healthy = false;
    this.#lostReason = `${link.display}: ${reason}`;
    const topics = [...this.#wantedOn(link)];
    if (topics.length > 0) this.#listener?.lost?.(topics, this.#lostReason);
    this.#refreshSoon();
  }

  #moved(link: RedisLink, topic: string): void {
    if (this.#placed.get(topic) !== link) return;
    this.#log.info("{topic} unsubscribed by {url}: its slot moved", { topic, url: link.display });
    this.#placed.set(topic, undefined);
    this.#refreshSoon();
  }

  #refreshOnMoved(error: unknown): void {
    if (/^(MOVED|CLUSTERDOWN)/.test(errorText(error))) this.#refreshSoon();
  }

  #scheduleRefresh(ms: number): void {
    if (this.#closed) return;
    REAL_CLOCK.clearTimeout(this.#refreshTimer);
    this.#refreshTimer = REAL_CLOCK.setTimeout(() => this.#refreshSoon(), ms);
  }

  /** Reads the slot map again (at most one read at a time) and follows it. */
  #refreshSoon(): void {
    if (this.#closed || this.#refreshing) return;
    this.#refreshing = this.#refresh().catch((error) => {
      this.#log.warn("redis cluster: reading the slot map failed: {error}", {
        error: errorText(error),
      });
    }).finally(() => {
      this.#refreshing = undefined;
      const intervalMs = this.#options.redis.ping_interval * 1000;
      this.#scheduleRefresh(this.#healthy ? intervalMs : Math.min(intervalMs, LOST_REFRESH_MS));
    });
  }

  async #refresh(): Promise<void> {
    const seeds = [...new Set([...(this.#map?.primaries ?? []), ...this.#seeds])];
    const map = await readSlotMap(seeds, this.#options.redis.ping_timeout * 1000, REAL_CLOCK);
    if (this.#closed) return;
    this.#map = map;
    for (const [url, link] of this.#links) {
      if (map.primaries.includes(url)) continue;
      this.#links.delete(url);
      this.#log.info("redis cluster: {url} no longer serves slots", { url: redactUrl(url) });
      await link.close();
    }
    const opening = map.primaries.filter((url) => !this.#links.has(url)).map((url) =>
      this.#link(url).open().catch((error) => {
        this.#links.delete(url);
        throw error;
      })
    );
    await Promise.all(opening);
    await this.#follow();
    const allUp = [...this.#links.values()].every((link) => link.up) &&
      map.owners.every((owner) => owner !== undefined);
    const placedRight = [...this.#placed].every(([topic, link]) =>
      link !== undefined && link === this.#ownerLink(topic)
    );
    if (!this.#healthy && allUp && placedRight && !this.#closed) {
      this.#healthy = true;
      this.#log.info("redis cluster served again: {count} topics subscribed", {
        count: this.#placed.size,
      });
      this.#listener?.health(true);
    }
  }

  /** Subscribes every wanted topic on its owner where it is not, then leaves the old one. */
  async #follow(): Promise<void> {
    const moves = [...this.#placed].flatMap(([topic, placed]) => {
      const owner = this.#ownerLink(topic);
      return !owner || owner === placed || !owner.up ? [] : [{ topic, placed, owner }];
    });
    await Promise.all(moves.map(async ({ topic, placed, owner }) => {
      if (!this.#placed.has(topic)) return;
      this.#placed.set(topic, owner);
      try {
        await owner.subscribe(topic);
      } catch (error) {
        if (this.#placed.get(topic) === owner) this.#placed.set(topic, undefined);
        throw error;
      }
      if (placed && this.#links.get(placed.options.url) === placed) await placed.unsubscribe(topic);
      if (this.#placed.get(topic) !== owner) return await owner.unsubscribe(topic);
      this.#listener?.resubscribed?.([topic]);
    }));
  }
}
