/**
 * Publishing from this process (SPEC sections 3 and 10): `POST /publish` and
 * `publish()` hand envelopes to the pub/sub adapter, through the topic's
 * history when its service keeps one. While this process's fan-out queue is
 * full (`server.max_fanout_queue_bytes`) every request is refused whole: what
 * it published could only be dropped on arrival here.
 *
 * A request is all or nothing as far as this process can tell: every
 * envelope is validated and serialized before the first is handed to the
 * adapter, so an invalid one publishes nothing. Once handed over, an
 * envelope cannot be taken back: when the adapter refuses some, the request
 * settles after every envelope has, and says how many went out.
 *
 * @module
 */
import type { SharkConfig } from "../config/config.ts";
import { InvalidEnvelope, parseEnvelope } from "./envelope.ts";
import { FanoutQueueFull } from "./fanout_queue.ts";
import type { Hub } from "./hub.ts";
import type { Metrics } from "../metrics/metrics.ts";
import { PublishOutcomeUnknown, type PubSub } from "../pubsub/pubsub.ts";
import { serviceOf } from "./subscription_name.ts";

/** An envelope ready for the adapter. */
interface Outgoing {
  readonly topic: string;
  readonly payload: string;
}

/**
 * Publishes envelopes through an adapter.
 *
 * @example
 * ```ts
 * const publisher = new Publisher(config, pubsub, metrics, hub);
 * await publisher.publish({ subscription: "books.1", data: { title: "Dune" } });
 * ```
 */
export class Publisher {
  readonly #services: SharkConfig["services"];
  readonly #pubsub: PubSub;
  readonly #metrics: Metrics;
  readonly #hub: Pick<Hub, "queueFull">;

  /** @param hub tells whether the fan-out queue is full. */
  constructor(config: SharkConfig, pubsub: PubSub, metrics: Metrics, hub: Pick<Hub, "queueFull">) {
    this.#services = config.services;
    this.#pubsub = pubsub;
    this.#metrics = metrics;
    this.#hub = hub;
  }

  /**
   * Publishes one envelope or an array of envelopes. Throws a
   * {@link FanoutQueueFull} while the fan-out queue is full or an
   * {@link InvalidEnvelope} naming the first invalid envelope (then nothing is
   * published), or an `Error` saying how many went out when the adapter
   * refused some.
   *
   * @returns the number of envelopes published.
   */
  async publish(envelopes: unknown): Promise<number> {
    const list: unknown[] = Array.isArray(envelopes) ? envelopes : [envelopes];
    if (this.#hub.queueFull) {
      this.#metrics.dropped("queue_full", list.length);
      throw new FanoutQueueFull(`the fan-out queue is full: ${list.length} envelope(s) refused`);
    }
    const outgoing = list.map((envelope, index) => {
      try {
        return outgoingOf(envelope);
      } catch (error) {
        if (!(error instanceof InvalidEnvelope) || list.length === 1) throw error;
        throw new InvalidEnvelope(`envelope ${index}: ${error.message}`);
      }
    });
    const results = await Promise.allSettled(outgoing.map((one) => this.#publishOne(one)));
    const failed = results.findIndex((result) => result.status === "rejected");
    const published = results.filter((result) => result.status === "fulfilled").length;
    this.#metrics.published += published;
    if (failed < 0) return published;
    const { reason } = results[failed] as PromiseRejectedResult;
    const why = reason instanceof Error ? reason.message : String(reason);
    const unknown = results.some((result) =>
      result.status === "rejected" && result.reason instanceof PublishOutcomeUnknown
    );
    const message =
      `${published} of ${list.length} envelopes published; envelope ${failed}: ${why}`;
    throw unknown ? new PublishOutcomeUnknown(message) : new Error(message);
  }

  /** One envelope: through the topic's history when its service keeps one. */
  async #publishOne({ topic, payload }: Outgoing): Promise<void> {
    const history = this.#services[serviceOf(topic)!]?.history;
    if (!history || !this.#pubsub.history) return this.#pubsub.publish(topic, payload);
    await this.#pubsub.history.publish(topic, payload, history);
    this.#metrics.historyPublished++;
  }
}

/** A valid envelope's topic and JSON text; throws an {@link InvalidEnvelope} for any other value. */
function outgoingOf(envelope: unknown): Outgoing {
  const parsed = parseEnvelope(envelope);
  if (typeof parsed === "string") throw new InvalidEnvelope(parsed);
  let payload: string;
  try {
    payload = JSON.stringify(parsed);
  } catch (error) {
    throw new InvalidEnvelope(`not serializable as JSON: ${(error as Error).message}`);
  }
  return { topic: parsed.subscription as string, payload };
}
