/**
 * Publishing (SPEC sections 3 and 10): envelopes given to `POST /publish` or
 * `publish()` are refused while this process's fan-out queue is full,
 * validated all before any is published, and handed to the adapter, through
 * the topic's history when its service keeps one.
 *
 * @module
 */
import type { SharkConfig } from "./config.ts";
import { InvalidEnvelope, parseEnvelope } from "./envelope.ts";
import { FanoutQueueFull } from "./fanout_queue.ts";
import type { Hub } from "./hub.ts";
import type { Metrics } from "./metrics.ts";
import type { PubSub } from "./pubsub.ts";
import { serviceOf } from "./subscription_name.ts";
import type { JsonObject } from "./util.ts";

/** What a {@link Publisher} publishes through. */
export interface PublisherOptions {
  readonly config: SharkConfig;
  readonly pubsub: PubSub;
  /** Tells whether the fan-out queue is full. */
  readonly hub: Hub;
  readonly metrics: Metrics;
}

/**
 * Publishes envelopes through the adapter.
 *
 * @example
 * ```ts
 * const publisher = new Publisher({ config, pubsub, hub, metrics });
 * await publisher.publish({ subscription: "books.1", data: { title: "New" } });
 * ```
 */
export class Publisher {
  readonly #options: PublisherOptions;

  constructor(options: PublisherOptions) {
    this.#options = options;
  }

  /**
   * Publishes one envelope or an array of envelopes. Throws a
   * {@link FanoutQueueFull} while the fan-out queue is full, or an
   * {@link InvalidEnvelope} naming the first invalid envelope; then nothing is
   * published.
   *
   * @returns the number of envelopes published.
   */
  async publish(envelopes: unknown): Promise<number> {
    const { hub, metrics } = this.#options;
    const list: unknown[] = Array.isArray(envelopes) ? envelopes : [envelopes];
    if (hub.queueFull) {
      metrics.dropped("queue_full", list.length);
      throw new FanoutQueueFull(`the fan-out queue is full: ${list.length} envelope(s) refused`);
    }
    const valid = list.map((envelope, index) => {
      const parsed = parseEnvelope(envelope);
      if (typeof parsed === "string") {
        throw new InvalidEnvelope(list.length > 1 ? `envelope ${index}: ${parsed}` : parsed);
      }
      return parsed;
    });
    await Promise.all(valid.map((envelope) => this.#publishOne(envelope)));
    metrics.published += valid.length;
    return valid.length;
  }

  /** One valid envelope: through the topic's history when its service keeps one. */
  async #publishOne(envelope: JsonObject): Promise<void> {
    const { config, pubsub, metrics } = this.#options;
    const topic = envelope.subscription as string;
    const service = config.services[serviceOf(topic)!];
    const payload = JSON.stringify(envelope);
    if (!service?.history || !pubsub.history) return pubsub.publish(topic, payload);
    await pubsub.history.publish(topic, payload, service.history);
    metrics.historyPublished++;
  }
}
