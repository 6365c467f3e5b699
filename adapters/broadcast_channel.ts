/**
 * The BroadcastChannel pub/sub adapter: every isolate that opens a channel of
 * the same name receives what any of them publishes (`--workers N` isolates
 * of one process, `deno serve --parallel`, isolates of one deployment that
 * share BroadcastChannel).
 *
 * @module
 */
import type { PubSub, PubSubListener } from "../src/pubsub.ts";

/** Options of a {@link BroadcastChannelPubSub}. */
export interface BroadcastChannelOptions {
  /** The channel name shared by the isolates of one deployment (`pubsub.broadcast_channel.name`). */
  readonly name?: string;
}

/**
 * Pub/sub across the isolates sharing a BroadcastChannel name. A payload is
 * posted once to the channel and delivered locally without a round trip.
 *
 * @example
 * ```ts
 * import { BroadcastChannelPubSub, Shark } from "../mod.ts";
 * const shark = new Shark({}, { pubsub: new BroadcastChannelPubSub({ name: "shark" }) });
 * ```
 */
export class BroadcastChannelPubSub implements PubSub {
  readonly name = "broadcast_channel";
  readonly #channelName: string;
  readonly #topics = new Set<string>();
  #channel: BroadcastChannel | undefined;
  #listener: PubSubListener | undefined;

  constructor(options: BroadcastChannelOptions = {}) {
    this.#channelName = options.name ?? "shark";
  }

  get healthy(): boolean {
    return this.#channel !== undefined;
  }

  start(listener: PubSubListener): Promise<void> {
    this.#listener = listener;
    this.#channel = new BroadcastChannel(this.#channelName);
    this.#channel.onmessage = (event: MessageEvent) => {
      const message = event.data;
      if (!Array.isArray(message) || message.length !== 2) return;
      const [topic, payload] = message;
      if (typeof topic !== "string" || typeof payload !== "string") return;
      if (this.#topics.has(topic)) listener.message(topic, payload);
    };
    return Promise.resolve();
  }

  subscribe(topic: string): Promise<void> {
    this.#topics.add(topic);
    return Promise.resolve();
  }

  unsubscribe(topic: string): Promise<void> {
    this.#topics.delete(topic);
    return Promise.resolve();
  }

  publish(topic: string, payload: string): Promise<void> {
    if (!this.#channel) return Promise.reject(new Error("broadcast channel is not started"));
    this.#channel.postMessage([topic, payload]);
    if (this.#topics.has(topic)) this.#listener?.message(topic, payload);
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.#channel?.close();
    this.#channel = undefined;
    this.#listener = undefined;
    this.#topics.clear();
    return Promise.resolve();
  }
}
