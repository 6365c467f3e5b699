/**
 * The hub: which subscriptions listen to which topic, which topics the
 * pub/sub adapter must carry, the fan-out of each published envelope to
 * the subscribers of its topic, and the reads of a topic's history for
 * subscribe replies and recovery (SPEC section 10). Payloads wait in a
 * {@link FanoutQueue}, which paces the fan-out; envelopes are validated by
 * `parseEnvelope`. A join/leave payload (SPEC section 12) is told from an
 * envelope by its first bytes and goes out as a `join` or `leave`.
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import { type Clock, isoTime, REAL_CLOCK } from "../clock.ts";
import { LogSampler } from "./log_sampler.ts";
import {
  Delivery,
  type DeliveryMetadata,
  messageFrameStart,
  normalizeTimestamp,
  parseEnvelope,
} from "./envelope.ts";
import { FanoutQueue, type Inbound } from "./fanout_queue.ts";
import { SharedReads } from "./shared_reads.ts";
import { type Position, positionOf } from "../pubsub/history.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { PubSub } from "../pubsub/pubsub.ts";
import type { Subscription } from "./subscription.ts";
import { PRESENCE_PREFIX } from "../presence/presence_payload.ts";
import { type PresenceNotice, presenceNotice } from "../presence/presence_notice.ts";

/** The topic could not be subscribed on the pub/sub backend. */
export class PubSubUnavailable extends Error {
  override readonly name = "PubSubUnavailable";
}

interface Topic {
  readonly subscribers: Set<Subscription>;
  ready: Promise<void>;
  /** {@link messageFrameStart} of the topic, serialized once. */
  readonly frameStart: string;
  /** Whether the topic's service keeps history: its messages carry positions. */
  readonly positioned: boolean;
  /** Whether the topic's service sends `join` and `leave`. */
  readonly joinLeave: boolean;
  /**
   * The position of the last positioned envelope fanned out: where a
   * catch-up reads from, and up to which an envelope of its epoch was
   * already delivered.
   */
  last?: Position;
  /** The position a subscribe reply first read: where a catch-up reads from before any fan-out. */
  read?: Position;
}

/** A topic's history as a subscribe reply and a recovery need it. */
export interface HistoryRead {
  /** The topic's current position. */
  readonly position: Position;
  /**
   * The envelopes after the requested position, ready for delivery, when
   * they could all be recovered; `undefined` otherwise.
   */
  readonly replay: Delivery[] | undefined;
}

/** Options of a {@link Hub}. */
export interface HubOptions {
  /** Whether frames carry `published_at`, `received_at`, `sent_at` and `queue_size`. */
  readonly metadata: boolean;
  /** `server.max_fanout_queue_bytes`: the fan-out queue's size limit. */
  readonly maxQueueBytes: number;
  /** The time the fan-out and the delivery metadata read; defaults to the runtime's. */
  readonly clock?: Clock;
}

/**
 * Indexes subscriptions by topic and fans published envelopes out to them.
 *
 * @example
 * ```ts
 * const hub = new Hub(pubsub, metrics, logger, { metadata: true, maxQueueBytes: 16_777_216 });
 * await pubsub.start({ message: (topic, payload) => hub.receive(topic, payload), health() {} });
 * ```
 */
export class Hub {
  readonly #topics = new Map<string, Topic>();
  readonly #pubsub: PubSub;
  readonly #metrics: Metrics;
  readonly #log: Logger;
  readonly #metadata: boolean;
  readonly #queue: FanoutQueue;
  readonly #clock: Clock;
  readonly #invalidLog: LogSampler;
  readonly #fullLog: LogSampler;
  readonly #reads = new SharedReads<HistoryRead>();

  constructor(pubsub: PubSub, metrics: Metrics, log: Logger, options: HubOptions) {
    this.#pubsub = pubsub;
    this.#metrics = metrics;
    this.#log = log;
    this.#metadata = options.metadata;
    this.#clock = options.clock ?? REAL_CLOCK;
    this.#invalidLog = new LogSampler(this.#clock);
    this.#fullLog = new LogSampler(this.#clock);
    this.#queue = new FanoutQueue(
      (inbound, behind) => this.#fanOut(inbound, behind),
      metrics,
      options.maxQueueBytes,
      this.#clock,
    );
  }

  /** Whether the fan-out queue is full: publishing now would only be dropped. */
  get queueFull(): boolean {
    return this.#queue.full;
  }

  /**
   * Adds a subscription to its topic, subscribing the topic on the adapter
   * when it is the first. Resolves once messages published from now on will
   * reach it (held until {@link Subscription.release}).
   */
  async join(subscription: Subscription): Promise<void> {
    const name = subscription.name;
    let topic = this.#topics.get(name);
    if (!topic) {
      const created: Topic = {
        subscribers: new Set(),
        ready: Promise.resolve(),
        frameStart: messageFrameStart(name),
        positioned: subscription.service.history !== null,
        joinLeave: subscription.service.presence?.join_leave === true,
      };
      created.ready = this.#pubsub.subscribe(name).catch((error) => {
        if (this.#topics.get(name) === created) this.#forget(name);
        throw error;
      });
      this.#topics.set(name, topic = created);
      this.#metrics.topicsOpen++;
    }
    topic.subscribers.add(subscription);
    try {
      await topic.ready;
    } catch (error) {
      topic.subscribers.delete(subscription);
      throw new PubSubUnavailable(`cannot subscribe ${name}: ${error}`);
    }
  }

  /**
   * Reads the topic's history for a joined subscription of a service with
   * `history`: its current position and, with `from`, the envelopes after
   * it (their epoch created when the topic had none).
   */
  async readHistory(subscription: Subscription, from?: Position): Promise<HistoryRead> {
    const { name, service } = subscription;
    const topic = this.#topics.get(name);
    const history = this.#pubsub.history;
    if (!topic || !history || !service.history) {
      throw new Error(`${name} has no history to read`);
    }
    const options = service.history;
    try {
      // Shared with the subscriptions asking the same (shared_reads.ts says why that is safe).
      if (!from) {
        const read = await this.#reads.read(JSON.stringify([name]), async () => ({
          position: await history.position(name, options),
          replay: undefined,
        }));
        topic.read ??= read.position;
        return read;
      }
      const read = await this.#reads.read(
        JSON.stringify([name, from.offset, from.epoch]),
        async () => {
          const recovery = await history.recover(name, from, options);
          return {
            position: recovery.position,
            replay: this.#replay(topic, name, recovery.payloads),
          };
        },
      );
      topic.read ??= read.position;
      return read;
    } catch (error) {
      throw new PubSubUnavailable(`cannot read the history of ${name}: ${error}`);
    }
  }

  /**
   * Delivers the envelopes of a history topic published after the last one
   * this node delivered (SPEC section 14: after its shard was lost or its
   * slot moved), each once, in order. Resolves `false` when they cannot all
   * be read (another epoch, offsets missing): the topic's sessions must then
   * get fresh state.
   */
  async catchUp(name: string): Promise<boolean> {
    const topic = this.#topics.get(name);
    const history = this.#pubsub.history;
    const options = [...(topic?.subscribers ?? [])][0]?.service.history;
    const from = topic?.last ?? topic?.read;
    if (!history || !options || !from) return true;
    const recovery = await history.recover(name, from, options);
    if (!recovery.payloads) return false;
    const receivedAt = this.#clock.wallTime();
    for (const payload of recovery.payloads) this.#fanOut({ topic: name, payload, receivedAt }, 0);
    return true;
  }

  /** Removes a subscription; the last one of a topic unsubscribes it on the adapter. */
  leave(subscription: Subscription): void {
    const topic = this.#topics.get(subscription.name);
    if (!topic || !topic.subscribers.delete(subscription)) return;
    if (topic.subscribers.size === 0) {
      this.#forget(subscription.name);
      this.#pubsub.unsubscribe(subscription.name).catch((error) =>
        this.#log.warn("pub/sub unsubscribe of {topic} failed: {error}", {
          topic: subscription.name,
          error: String(error),
        })
      );
    }
  }

  /**
   * Takes a payload from the pub/sub adapter; fan-out happens in a later
   * microtask. Dropped (counted) while the fan-out queue is full.
   */
  receive(topic: string, payload: string): void {
    this.#metrics.received++;
    if (!this.#topics.has(topic) || this.#queue.push(topic, payload)) return;
    this.#metrics.dropped("queue_full");
    const suppressedSinceLast = this.#fullLog.take();
    if (suppressedSinceLast === undefined) return;
    this.#log.warn("fan-out queue full: envelope on {topic} dropped", {
      topic,
      queuedBytes: this.#metrics.queuedBytes,
      suppressedSinceLast,
    });
  }

  /** Stops the fan-out and releases its resources. */
  close(): void {
    this.#queue.close();
  }

  #forget(name: string): void {
    this.#topics.delete(name);
    this.#metrics.topicsOpen--;
  }

  /** Fans one envelope out; returns a measure of the work done (subscribers offered). */
  #fanOut(inbound: Inbound, behind: number): number {
    const topic = this.#topics.get(inbound.topic);
    if (!topic) return 1;
    if (inbound.payload.startsWith(PRESENCE_PREFIX)) {
      const notice = presenceNotice(inbound.topic, inbound.payload);
      if (notice) return topic.joinLeave ? this.#announce(topic, inbound, notice) : 1;
    }
    const delivery = this.#delivery(topic, inbound, behind);
    if (!delivery) return 1;
    const position = delivery.position;
    if (position) {
      // A caught-up envelope may arrive live too: each is delivered once.
      const last = topic.last;
      if (last && last.epoch === position.epoch && position.offset <= last.offset) return 1;
      topic.last = position;
    }
    for (const subscription of topic.subscribers) {
      try {
        subscription.offer(delivery);
      } catch (error) {
        this.#failed(inbound, error);
      }
    }
    return 1 + topic.subscribers.size;
  }

  /** Sends a join or leave to every subscriber but the member's own session. */
  #announce(topic: Topic, inbound: Inbound, notice: PresenceNotice): number {
    for (const subscription of topic.subscribers) {
      try {
        if (subscription.session.client !== notice.client) subscription.notify(notice);
      } catch (error) {
        this.#failed(inbound, error);
      }
    }
    return 1 + topic.subscribers.size;
  }

  #failed(inbound: Inbound, error: unknown): void {
    this.#log.error("delivery to a subscriber of {topic} failed: {error}", {
      topic: inbound.topic,
      error: String(error),
    });
  }

  /** The delivery of a payload, or `undefined` (counted and logged) when it is not an envelope. */
  #delivery(topic: Topic, inbound: Inbound, behind: number): Delivery | undefined {
    const envelope = parseEnvelope(inbound.payload, inbound.topic);
    if (typeof envelope === "string") {
      this.#invalid(inbound, envelope);
      return undefined;
    }
    const published = envelope.published_at;
    const metadata: DeliveryMetadata | undefined = this.#metadata
      ? {
        publishedAt: published === undefined ? undefined : normalizeTimestamp(published),
        receivedAt: isoTime(inbound.receivedAt),
        queueSize: behind,
        sentAt: isoTime(this.#clock.wallTime()),
      }
      : undefined;
    const position = topic.positioned ? positionOf(envelope) : undefined;
    return new Delivery(topic.frameStart, envelope, metadata, position);
  }

  /** Deliveries of recovered payloads, received now with nothing queued behind them. */
  #replay(topic: Topic, name: string, payloads: readonly string[] | undefined) {
    if (!payloads) return undefined;
    const receivedAt = this.#clock.wallTime();
    const replay: Delivery[] = [];
    for (const payload of payloads) {
      const delivery = this.#delivery(topic, { topic: name, payload, receivedAt }, 0);
      if (delivery) replay.push(delivery);
    }
    return replay;
  }

  #invalid(inbound: Inbound, reason: string): void {
    this.#metrics.dropped("invalid");
    const suppressedSinceLast = this.#invalidLog.take();
    if (suppressedSinceLast === undefined) return;
    this.#log.warn("invalid envelope on {topic} dropped: {reason}", {
      topic: inbound.topic,
      reason,
      payload: inbound.payload.slice(0, 200),
      suppressedSinceLast,
    });
  }
}
