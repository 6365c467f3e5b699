/**
 * The memory adapter's presence store (SPEC section 12): the members of each
 * topic, in this process only. The process is the whole deployment, so no
 * member belongs to a node that could stop without removing it: `refresh`
 * has nothing to expire, and a topic is forgotten with its last member.
 *
 * @module
 */
import type { Member, PresenceOptions, PresenceStore, Refreshed } from "../src/presence/store.ts";
import { memberJson, presencePayload } from "../src/presence/presence_payload.ts";

interface Stored {
  readonly member: Member;
  /** The member's JSON text, written into its join and its leave. */
  readonly json: string;
}

/** One process is the whole deployment: no other node to expire, never taken for dead. */
const NOTHING_TO_REFRESH: Refreshed = { expired: 0, lapsed: false };

/**
 * Presence inside one process; `deliver` hands a join or leave payload to the
 * adapter's subscribers synchronously, so that changing the members and
 * announcing it form one step, in order with the topic's messages.
 *
 * @example
 * ```ts
 * import { MemoryPresence } from "./memory_presence.ts";
 *
 * const presence = new MemoryPresence((topic, payload) => console.log(topic, payload));
 * const options = { ttl: 60, joinLeave: true };
 * await presence.add("chat.room", { client: "c1", user: "u1", info: {} }, options);
 * console.log(await presence.read("chat.room"));
 * ```
 */
export class MemoryPresence implements PresenceStore {
  readonly #topics = new Map<string, Map<string, Stored>>();
  readonly #deliver: (topic: string, payload: string) => void;

  /** @param deliver publishes a payload on a topic through the adapter. */
  constructor(deliver: (topic: string, payload: string) => void) {
    this.#deliver = deliver;
  }

  prepare(): Promise<void> {
    return Promise.resolve();
  }

  add(topic: string, member: Member, options: PresenceOptions): Promise<void> {
    let members = this.#topics.get(topic);
    if (!members) this.#topics.set(topic, members = new Map());
    const stored = { member, json: memberJson(member) };
    members.set(member.client, stored);
    if (options.joinLeave) this.#deliver(topic, presencePayload("join", topic, stored.json));
    return Promise.resolve();
  }

  remove(topic: string, client: string, options: PresenceOptions): Promise<boolean> {
    const members = this.#topics.get(topic);
    const stored = members?.get(client);
    if (!members || !stored) return Promise.resolve(false);
    members.delete(client);
    if (members.size === 0) this.#topics.delete(topic);
    if (options.joinLeave) this.#deliver(topic, presencePayload("leave", topic, stored.json));
    return Promise.resolve(true);
  }

  read(topic: string): Promise<Member[]> {
    const members = this.#topics.get(topic);
    return Promise.resolve(members ? [...members.values()].map((stored) => stored.member) : []);
  }

  refresh(): Promise<Refreshed> {
    return Promise.resolve(NOTHING_TO_REFRESH);
  }
}
