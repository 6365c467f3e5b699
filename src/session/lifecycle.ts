/**
 * What happens to a subscription over time (SPEC section 5): it is
 * registered, renewed by its authorizer, kept warm by heartbeats, and ended
 * by the client, by a failed renewal, by the connection closing or by the
 * server API; a member of its topic's presence stops being one as it ends.
 *
 * @module
 */
import { type Callbacks, errorOf, succeeded } from "../callbacks/callbacks.ts";
import type { Hub } from "../delivery/hub.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { Presence } from "../presence/presence.ts";
import { ClientEvent, ErrorText } from "../protocol.ts";
import type { Session } from "./session.ts";
import type { Subscription } from "../delivery/subscription.ts";

/**
 * Registers, renews and ends subscriptions.
 *
 * @example
 * ```ts
 * lifecycle.begin(session, subscription);
 * await lifecycle.endAll(session);
 * ```
 */
export class Lifecycle {
  readonly #callbacks: Callbacks;
  readonly #hub: Hub;
  readonly #metrics: Metrics;
  readonly #presence: Presence;

  constructor(callbacks: Callbacks, hub: Hub, metrics: Metrics, presence: Presence) {
    this.#callbacks = callbacks;
    this.#hub = hub;
    this.#metrics = metrics;
    this.#presence = presence;
  }

  /** Registers a confirmed subscription with its session and starts its timers. */
  begin(session: Session, subscription: Subscription): void {
    session.subscriptions.set(subscription.name, subscription);
    this.#metrics.subscriptionsOpen++;
    const service = subscription.service;
    if (service.authorization_renewal_period !== null) {
      this.#scheduleRenewal(session, subscription);
    }
    if (service.heartbeat_period !== null) {
      this.#schedule(subscription, Math.random() * service.heartbeat_period, async () => {
        await this.#heartbeat(session, subscription);
      });
    }
  }

  /**
   * Takes a subscription out of its session, its topic and its topic's
   * members, and stops its timers. Idempotent: `undefined` when it had
   * already ended, else a promise (that never rejects) of its member's
   * removal, which shutdown must await: its leave goes through the adapter.
   */
  detach(session: Session, subscription: Subscription): Promise<void> | undefined {
    const wasActive = subscription.active;
    subscription.stop();
    this.#hub.leave(subscription);
    if (session.subscriptions.get(subscription.name) === subscription) {
      session.subscriptions.delete(subscription.name);
      this.#metrics.subscriptionsOpen--;
    }
    return wasActive ? this.#presence.leave(subscription) : undefined;
  }

  /**
   * Ends a subscription without asking the client: `before_unsubscribe`
   * (result ignored but for its `data`) and `on_unsubscribe`. With `error`,
   * the client is told with an `unsubscribe` message carrying it, as soon as
   * that `data` is known: `on_unsubscribe` is the service's business only.
   * From the start the subscription is gone for the client's own events.
   */
  async end(session: Session, subscription: Subscription, error?: unknown): Promise<void> {
    const left = this.detach(session, subscription);
    if (!left) return;
    const before = await this.#callbacks.call(subscription, "before_unsubscribe");
    if (error !== undefined) {
      session.send({
        event: ClientEvent.unsubscribe,
        subscription: subscription.name,
        ...(before.data !== undefined ? { data: before.data } : {}),
        error,
        ...subscription.extra,
      });
    }
    await Promise.all([left, this.#callbacks.call(subscription, "on_unsubscribe")]);
  }

  /** Ends every subscription of a closed session, their callbacks in parallel. */
  async endAll(session: Session): Promise<void> {
    const subscriptions = [...session.subscriptions.values()];
    await Promise.all(subscriptions.map((subscription) => this.end(session, subscription)));
  }

  #schedule(subscription: Subscription, seconds: number, task: () => Promise<void>): void {
    subscription.after(seconds, () => {
      task().catch((error) =>
        subscription.session.log.error("timer of {subscription} failed: {error}", {
          subscription: subscription.name,
          error: String(error),
        })
      );
    });
  }

  #scheduleRenewal(session: Session, subscription: Subscription): void {
    const { authorization_renewal_period: period, authorization_renewal_jitter: jitter } =
      subscription.service;
    this.#schedule(subscription, period! - Math.random() * jitter, async () => {
      const reply = await this.#callbacks.authorize(subscription);
      if (!subscription.active) return;
      if (succeeded(reply)) return this.#scheduleRenewal(session, subscription);
      const error = errorOf(reply, ErrorText.unauthorized);
      session.log.info("authorization of {subscription} expired: {error}", {
        subscription: subscription.name,
        error,
      });
      await this.end(session, subscription, error);
    });
  }

  async #heartbeat(session: Session, subscription: Subscription): Promise<void> {
    const reply = await this.#callbacks.call(subscription, "on_heartbeat");
    if (!succeeded(reply)) {
      session.log.warn("heartbeat of {subscription} failed: {error}", {
        subscription: subscription.name,
        error: reply.error,
      });
    }
    if (subscription.active) {
      this.#schedule(
        subscription,
        subscription.service.heartbeat_period!,
        () => this.#heartbeat(session, subscription),
      );
    }
  }
}
