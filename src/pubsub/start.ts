/**
 * How an engine starts its pub/sub adapter (SPEC sections 9, 10, 12 and 13):
 * a service that needs a store the adapter does not keep (history,
 * presence) is refused before anything starts, naming the key; then the
 * adapter starts, its stores are readied and the server API's control topic
 * is subscribed. A step that fails after the start closes the adapter again.
 *
 * @module
 */
import type { SharkConfig } from "../config/config.ts";
import { CONTROL_TOPIC } from "../protocol.ts";
import type { PubSub, PubSubListener } from "./pubsub.ts";

/**
 * Starts `pubsub` for an engine configured by `config`; rejects with an error
 * naming the first key it cannot serve, or the adapter's own.
 *
 * @example
 * ```ts
 * await startPubSub(config, pubsub, { message: (topic, payload) => {}, health() {} });
 * ```
 */
export async function startPubSub(
  config: SharkConfig,
  pubsub: PubSub,
  listener: PubSubListener,
): Promise<void> {
  const services = Object.entries(config.services);
  const history = services.find(([, service]) => service.history !== null);
  if (history && !pubsub.history) {
    throw new Error(`services.${history[0]}.history: the ${pubsub.name} adapter keeps no history`);
  }
  const presence = services.find(([, service]) => service.presence !== null);
  if (presence && !pubsub.presence) {
    throw new Error(
      `services.${presence[0]}.presence: the ${pubsub.name} adapter keeps no presence`,
    );
  }
  await pubsub.start(listener);
  try {
    if (history) await pubsub.history!.prepare();
    if (presence) await pubsub.presence!.prepare();
    await pubsub.subscribe(CONTROL_TOPIC);
  } catch (error) {
    await pubsub.close();
    throw error;
  }
}
