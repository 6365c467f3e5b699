/**
 * The BroadcastChannel pub/sub adapter: every isolate that opens a channel of
 * the same name receives what any of them publishes (`--workers N` isolates
 * of one process, `deno serve --parallel`, isolates of one deployment that
 * share BroadcastChannel).
 *
 * @module
 */
import type { PubSub, PubSubListener } from "../src/pubsub/pubsub.ts";
import { MemoryPubSub } from "./memory.ts";

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
  /**
   * This isolate's topics and listener: a payload from another isolate is
   * delivered here as the memory adapter delivers a local publish.
   */
  readonly #local = new MemoryPubSub();
  #channel: BroadcastChannel | undefined;

  constructor(options: BroadcastChannelOptions = {}) {
    this.#channelName = options.name ?? "shark";
  }

  get healthy(): boolean {
    return this.#channel !== undefined;
  }

  start(listener: PubSubListener): Promise<void> {
    this.#channel = new BroadcastChannel(this.#channelName);
    this.#channel.onmessage = (event: MessageEvent) => {
      const message = event.data;
      if (!Array.isArray(message) || message.length !== 2) return;
      const [topic, payload] = message;
      if (typeof topic !== "string" || typeof payload !== "string") return;
      this.#local.publish(topic, payload);
    };
    return this.#local.start(listener);
  }

  subscribe(topic: string): Promise<void> {
    return this.#local.subscribe(topic);
  }

  unsubscribe(topic: string): Promise<void> {
    return this.#local.unsubscribe(topic);
  }

  publish(topic: string, payload: string): Promise<void> {
    if (!this.#channel) return Promise.reject(new Error("broadcast channel is not started"));
    this.#channel.postMessage([topic, payload]);
    return this.#local.publish(topic, payload);
  }

  close(): Promise<void> {
    this.#channel?.close();
    this.#channel = undefined;
    return this.#local.close();
  }
}
