/**
 * The link to one Redis server: its subscriber connection (and, where it
 * publishes, its publisher connection), the PING that proves both alive, the
 * reconnect loop that replaces them after a loss, and the topics it
 * subscribes again on every fresh connection. It reports a loss and a
 * recovery to its owner, which decides what they mean for the sessions.
 *
 * Rules, each timed on the link's {@link Clock}:
 * - connecting and the first SUBSCRIBE are bounded by {@link CONNECT_TIMEOUT_MS},
 *   the first PING by `pingTimeoutMs`;
 * - every `pingIntervalMs` the subscriber is pinged; no reply within
 *   `pingTimeoutMs` is a loss, unless the deadline itself fired late (this
 *   process was stalled, not Redis): then it gets grace, a few times;
 * - a connection error or a dropped connection, either one, is a loss;
 * - after a loss, attempts follow a capped exponential backoff with jitter
 *   until one connects, subscribes every wanted topic and is answered a PING.
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import { redactUrl } from "../src/config/redact.ts";
import { type Clock, delay, REAL_CLOCK } from "../src/clock.ts";
import { keySlot } from "./redis_keys.ts";
import {
  CONNECT_TIMEOUT_MS,
  errorText,
  newClient,
  type RedisClient,
  withTimeout,
} from "./redis_client.ts";

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

/**
 * The wait before reconnect attempt `attempt` (from 0): doubling, capped,
 * ±50 % jitter from `random` (in [0, 1)).
 */
function backoff(attempt: number, random: () => number): number {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt);
  return base * (0.5 + random());
}

/** Which server a {@link RedisLink} connects to, and how. */
export interface RedisLinkOptions {
  /** Names the server in logs and errors (`redis`, `redis_alt`). */
  readonly label: string;
  readonly url: string;
  /** Put before a topic to make its channel. */
  readonly prefix: string;
  readonly pingIntervalMs: number;
  readonly pingTimeoutMs: number;
  /** Whether this server also gets the publisher connection. */
  readonly publishes: boolean;
  /**
   * Whether topics travel by SSUBSCRIBE/SPUBLISH (SPEC section 14): one
   * SSUBSCRIBE per slot, since a command never mixes slots.
   */
  readonly sharded?: boolean;
  /** The time pings, deadlines and backoff run on; the runtime's by default. */
  readonly clock?: Clock;
  /** The backoff's jitter, in [0, 1); `Math.random` by default. */
  readonly random?: () => number;
}

/** What a {@link RedisLink} needs of the adapter that owns it. */
export interface RedisLinkOwner {
  readonly log: Logger;
  /** Topics to subscribe on a fresh connection. */
  wanted(): Iterable<string>;
  /** A message on one of the link's channels, the prefix stripped. */
  message(topic: string, payload: string): void;
  /** The link was up and is lost; it is reconnecting. */
  lost(link: RedisLink, reason: string): void;
  /** The link is up again after a loss, every wanted topic subscribed. */
  restored(link: RedisLink): void;
  /**
   * The server unsubscribed `topic` itself (a sharded channel whose slot
   * moved): it must be subscribed again where its slot now lives.
   */
  moved?(link: RedisLink, topic: string): void;
}

/**
 * The connections to one Redis server: the subscriber (and, where it
 * publishes, the publisher), their pings, and their reconnect loop.
 */
export class RedisLink {
  readonly options: RedisLinkOptions;
  /** The URL without its password, for logs and errors. */
  readonly display: string;
  /** Connected, every wanted topic subscribed, pings running. */
  up = false;
  readonly #owner: RedisLinkOwner;
  readonly #clock: Clock;
  /** Bumped whenever the current clients are given up, so that late events of old ones are ignored. */
  #generation = 0;
  #subscriber: RedisClient | undefined;
  #publisher: RedisClient | undefined;
  #clients: RedisClient[] = [];
  #pingTimer: unknown;
  #pingDeadline: unknown;
  #reconnecting: Promise<void> | undefined;
  readonly #stop = new AbortController();

  constructor(options: RedisLinkOptions, owner: RedisLinkOwner) {
    this.options = options;
    this.display = redactUrl(options.url);
    this.#owner = owner;
    this.#clock = options.clock ?? REAL_CLOCK;
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
    subscriber.on("sharded-channel-moved", (channel: string) => {
      if (generation !== this.#generation) return;
      this.#owner.moved?.(this, channel.slice(this.options.prefix.length));
    });
    try {
      const seconds = CONNECT_TIMEOUT_MS / 1000;
      await withTimeout(
        Promise.all(this.#clients.map((client) => client.connect())),
        CONNECT_TIMEOUT_MS,
        `no answer within ${seconds} s`,
        this.#clock,
      );
      this.#check(generation);
      // From here on, unsubscribe() reaches this connection, after the SUBSCRIBE below.
      this.#subscriber = subscriber;
      const channels = [...this.#owner.wanted()].map((topic) => this.options.prefix + topic);
      if (channels.length > 0) {
        await withTimeout(
          this.options.sharded
            ? Promise.all(
              groupBySlot(channels).map((group) => subscriber.sSubscribe(group, this.#onMessage)),
            ).then(() => {})
            : subscriber.subscribe(channels, this.#onMessage),
          CONNECT_TIMEOUT_MS,
          `SUBSCRIBE not confirmed within ${seconds} s`,
          this.#clock,
        );
      }
      this.#check(generation);
      // A paused or stalled server may still accept connections and answer
      // the handshake: only a PING proves it serves commands again.
      await withTimeout(
        Promise.all(this.#clients.map((client) => client.ping())),
        this.options.pingTimeoutMs,
        `no PING reply within ${this.options.pingTimeoutMs / 1000} s`,
        this.#clock,
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
    if (!this.up || !this.#subscriber) return Promise.reject(this.#down());
    const channel = this.options.prefix + topic;
    return this.options.sharded
      ? this.#subscriber.sSubscribe(channel, this.#onMessage)
      : this.#subscriber.subscribe(channel, this.#onMessage);
  }

  /** UNSUBSCRIBEs `topic` on a live connection; a lost one has forgotten it anyway. */
  async unsubscribe(topic: string): Promise<void> {
    const subscriber = this.#subscriber;
    if (!subscriber) return;
    try {
      const channel = this.options.prefix + topic;
      await (this.options.sharded
        ? subscriber.sUnsubscribe(channel, this.#onMessage)
        : subscriber.unsubscribe(channel, this.#onMessage));
    } catch (error) {
      this.#owner.log.debug("{server} UNSUBSCRIBE {topic} failed: {error}", {
        server: this.options.label,
        topic,
        error: errorText(error),
      });
    }
  }

  /** PUBLISHes (SPUBLISHes when sharded) on the publisher connection; resolves with the receiver count. */
  publish(topic: string, payload: string): Promise<number> {
    if (!this.up || !this.#publisher) return Promise.reject(this.#down());
    const channel = this.options.prefix + topic;
    return this.options.sharded
      ? this.#publisher.sPublish(channel, payload)
      : this.#publisher.publish(channel, payload);
  }

  /** Runs a command on the publisher connection. */
  command(args: readonly string[]): Promise<unknown> {
    if (!this.up || !this.#publisher) return Promise.reject(this.#down());
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

  #down(): Error {
    return new Error(`${this.options.label} ${this.display} is down`);
  }

  #check(generation: number): void {
    if (generation !== this.#generation) throw new Error("connection lost while connecting");
    if (this.#stop.signal.aborted) throw new Error("closed");
  }

  /** Gives up the current clients; pending commands on them reject. */
  #drop(): void {
    this.#generation++;
    this.up = false;
    this.#clock.clearTimeout(this.#pingTimer);
    this.#clock.clearTimeout(this.#pingDeadline);
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
    this.#pingTimer = this.#clock.setTimeout(() => {
      const subscriber = this.#subscriber;
      if (generation !== this.#generation || !subscriber) return;
      this.#armPingDeadline(generation, pingTimeoutMs, 0);
      subscriber.ping().then(
        () => {
          if (generation !== this.#generation) return;
          this.#clock.clearTimeout(this.#pingDeadline);
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
    const armedAt = this.#clock.now();
    this.#pingDeadline = this.#clock.setTimeout(() => {
      const late = this.#clock.now() - armedAt - ms;
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
      await delay(backoff(attempt, this.options.random ?? Math.random), signal, this.#clock);
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

/** `channels` in groups of one slot each, so that no SSUBSCRIBE mixes slots. */
function groupBySlot(channels: readonly string[]): string[][] {
  const groups = new Map<number, string[]>();
  for (const channel of channels) {
    const slot = keySlot(channel);
    const group = groups.get(slot);
    if (group) group.push(channel);
    else groups.set(slot, [channel]);
  }
  return [...groups.values()];
}
