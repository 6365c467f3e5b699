/**
 * Presence (SPEC section 12), this node's side: which of its subscriptions
 * are members of their topic, adding each to the adapter's store before its
 * subscribe reply and removing it when it ends, reading a topic's members
 * for `presence` replies and `POST /presence`, and refreshing the topics it
 * has members in (`keeper.ts` says when).
 *
 * The store (`store.ts`) keeps the members of every node and announces each
 * change on the topic's own channel (`presence_payload.ts`); the hub turns
 * those announcements into `join` and `leave` frames (`presence_notice.ts`).
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import type { PresenceConfig } from "../config/config.ts";
import { PubSubUnavailable } from "../delivery/hub.ts";
import type { Subscription } from "../delivery/subscription.ts";
import type { Metrics } from "../metrics/metrics.ts";
import { memberOf, type PresenceSummary, summarize } from "./member.ts";
import type { Member, PresenceOptions, PresenceStore } from "./store.ts";

export type { PresenceSummary } from "./member.ts";
export type { Member, PresenceOptions, PresenceStore, Refreshed } from "./store.ts";

const DONE = Promise.resolve();

/** A service's presence settings as its store takes them. */
function optionsOf(presence: PresenceConfig): PresenceOptions {
  return { ttl: presence.ttl, joinLeave: presence.join_leave };
}

/**
 * This node's members and its calls to the store.
 *
 * @example
 * ```ts
 * const presence = new Presence(pubsub.presence, metrics, logger);
 * await presence.enter(subscription); // before the subscribe reply
 * const { members, clients, users } = await presence.read("chat.room", service.presence);
 * await presence.leave(subscription); // when the subscription ends
 * ```
 */
export class Presence {
  readonly #store: PresenceStore | undefined;
  readonly #metrics: Metrics;
  readonly #log: Logger;
  /** The subscriptions of this node that are members, with their member, by topic. */
  readonly #members = new Map<string, Map<Subscription, Member>>();
  /**
   * Members whose removal failed, by topic and client: tried again at the
   * topic's next refresh, which would otherwise keep them alive with the
   * node's other members of the topic. A topic without those expires them.
   */
  readonly #orphans = new Map<string, Map<string, PresenceConfig>>();

  /** @param store the adapter's store; services with `presence` need one. */
  constructor(store: PresenceStore | undefined, metrics: Metrics, log: Logger) {
    this.#store = store;
    this.#metrics = metrics;
    this.#log = log;
  }

  /**
   * Makes a subscription of a service with `presence` a member of its topic
   * (with its join); resolves once the store has it. Rejects with a
   * {@link PubSubUnavailable} when the store failed: the caller ends the
   * subscription, which removes whatever the store may have kept.
   */
  async enter(subscription: Subscription): Promise<void> {
    const presence = subscription.service.presence;
    if (!presence) return;
    const { name, session } = subscription;
    let local = this.#members.get(name);
    if (!local) this.#members.set(name, local = new Map());
    const member = memberOf(session.client, session.authInfo, subscription.extra, presence);
    local.set(subscription, member);
    this.#metrics.presenceMembers++;
    try {
      await this.#storeOf(name).add(name, member, optionsOf(presence));
    } catch (error) {
      throw new PubSubUnavailable(`cannot add a member to ${name}: ${error}`);
    }
  }

  /**
   * Removes a subscription's member (with its leave) if it is one; resolves
   * once the store is done. Never rejects: a failure is logged.
   */
  leave(subscription: Subscription): Promise<void> {
    const { name } = subscription;
    const local = this.#members.get(name);
    if (!local?.delete(subscription)) return DONE;
    this.#metrics.presenceMembers--;
    if (local.size === 0) this.#members.delete(name);
    return this.#remove(name, subscription.session.client, subscription.service.presence!);
  }

  /**
   * The members of `topic` on every node. Rejects with a
   * {@link PubSubUnavailable} when the store cannot be read.
   */
  async read(topic: string, presence: PresenceConfig): Promise<PresenceSummary> {
    try {
      const members = await this.#storeOf(topic).read(topic, optionsOf(presence));
      this.#metrics.presenceRequest("ok");
      return summarize(members);
    } catch (error) {
      this.#metrics.presenceRequest("unavailable");
      throw new PubSubUnavailable(`cannot read the members of ${topic}: ${error}`);
    }
  }

  /** The topics this node has members in now. */
  topics(): IterableIterator<string> {
    return this.#members.keys();
  }

  /**
   * Keeps this node's members of `topic` alive and removes those of nodes
   * that stopped, counting them. Never rejects: a failure is logged (the
   * next refresh comes well before the members expire).
   */
  async refresh(topic: string, presence: PresenceConfig): Promise<void> {
    const orphans = this.#orphans.get(topic);
    if (orphans) {
      this.#orphans.delete(topic);
      await Promise.all(
        [...orphans].map(([client, settings]) => this.#remove(topic, client, settings)),
      );
    }
    try {
      const options = optionsOf(presence);
      const { expired, lapsed } = await this.#storeOf(topic).refresh(topic, options);
      this.#metrics.presenceExpired += expired;
      if (lapsed) await this.#addAgain(topic, presence);
    } catch (error) {
      this.#log.warn("presence refresh of {topic} failed: {error}", {
        topic,
        error: String(error),
      });
    }
  }

  /**
   * Another node took this one for dead (it was frozen or cut off past `ttl`)
   * and removed its members of `topic` with their leaves, while their
   * subscriptions went on here: they become members again, with joins.
   */
  async #addAgain(topic: string, presence: PresenceConfig): Promise<void> {
    const local = this.#members.get(topic);
    if (!local) return;
    const options = optionsOf(presence);
    this.#log.warn(
      "presence of {topic} lapsed (this node was taken for dead): adding {count} members again",
      {
        topic,
        count: local.size,
      },
    );
    const store = this.#storeOf(topic);
    await Promise.all([...local].map(async ([subscription, member]) => {
      await store.add(topic, member, options);
      // Ended meanwhile: its removal may have run before this add.
      if (this.#members.get(topic)?.get(subscription) !== member) {
        await this.#remove(topic, member.client, presence);
      }
    }));
  }

  async #remove(topic: string, client: string, presence: PresenceConfig): Promise<void> {
    try {
      await this.#storeOf(topic).remove(topic, client, optionsOf(presence));
    } catch (error) {
      let orphans = this.#orphans.get(topic);
      if (!orphans) this.#orphans.set(topic, orphans = new Map());
      orphans.set(client, presence);
      this.#log.warn("removing a member of {topic} failed, to be tried again: {error}", {
        topic,
        error: String(error),
      });
    }
  }

  #storeOf(topic: string): PresenceStore {
    if (!this.#store) throw new Error(`${topic}: the pub/sub adapter keeps no presence`);
    return this.#store;
  }
}
