/**
 * The presence store (SPEC section 12): the seam between the engine and the
 * adapters that can keep who is subscribed to a topic, on every node.
 *
 * How it fits {@link PubSub} without breaking adapters that keep none, as
 * `history.ts` does: an adapter that can keep presence exposes a
 * {@link PresenceStore} as its optional `presence` property (memory and Redis
 * do; BroadcastChannel does not, since its isolates share no store). The
 * engine refuses to start a service with `presence` on an adapter without
 * one.
 *
 * Joins and leaves travel inside the topic's own channel as payloads built by
 * `presence_payload.ts`, so that they reach every node in one order with the
 * topic's messages.
 *
 * @module
 */
import type { JsonObject } from "../json.ts";

/** One member of a topic, as SPEC 12 shows it. */
export interface Member {
  /** The session's client id: unique across every node, never reused. */
  readonly client: string;
  /** The member's user (the `user_field` auth value as a string; `""` when absent). */
  readonly user: string;
  /** The service's presence `fields` that the session has, their JSON values unchanged. */
  readonly info: JsonObject;
}

/** A service's presence settings as a store needs them. */
export interface PresenceOptions {
  /** Seconds after its last refresh that a member of a node that stopped is removed. */
  readonly ttl: number;
  /** Whether adding/removing publishes a join/leave payload on the topic's channel. */
  readonly joinLeave: boolean;
}

/**
 * The members of each topic, kept by a pub/sub adapter for every node that
 * shares it.
 *
 * Guarantees: add/remove/expiry are each ONE atomic step that also publishes
 * the join/leave payload (`presencePayload`) through the adapter's ordinary
 * channel of the topic, so that joins, leaves and messages of a topic reach
 * every node in one order; remove() resolves true only for the one call that
 * removed the member (exactly one leave per member, whoever removes it).
 *
 * @example
 * ```ts
 * const store = new MemoryPubSub().presence;
 * const options = { ttl: 60, joinLeave: true };
 * await store.add("chat.room", { client: "c1", user: "u1", info: {} }, options);
 * const members = await store.read("chat.room", options);
 * await store.remove("chat.room", "c1", options);
 * ```
 */
export interface PresenceStore {
  /** Readies the store (Redis: loads the script); called at start when a service has presence. */
  prepare(): Promise<void>;
  /** Makes `member` a member of `topic` (publishing its join when `options.joinLeave`). */
  add(topic: string, member: Member, options: PresenceOptions): Promise<void>;
  /**
   * Removes the member `client` from `topic` (publishing its leave when
   * `options.joinLeave`); resolves true only for the call that removed it.
   */
  remove(topic: string, client: string, options: PresenceOptions): Promise<boolean>;
  /** Every live member; members of dead nodes (past ttl) are removed first, with their leaves. */
  read(topic: string, options: PresenceOptions): Promise<Member[]>;
  /**
   * Keeps this node's members of `topic` alive for another `ttl`, and removes (with leaves) the
   * members of other nodes whose last refresh is older than ttl.
   * The engine calls it every ttl/3 for each topic this node has members in.
   */
  refresh(topic: string, options: PresenceOptions): Promise<Refreshed>;
}

/** What a {@link PresenceStore.refresh} did. */
export interface Refreshed {
  /** Members of other nodes it removed (each with its leave). */
  readonly expired: number;
  /**
   * Whether this node's own members of the topic were gone: another node took
   * it for dead (it was frozen or cut off for longer than `ttl`) and removed
   * them, with their leaves. The engine adds its members again.
   */
  readonly lapsed: boolean;
}
