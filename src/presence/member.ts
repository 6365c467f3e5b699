/**
 * What other clients see of a subscription (SPEC section 12): its member,
 * made of the session's client id, its user and the service's presence
 * `fields` it has; and the summary of a topic's members that a `presence`
 * reply and `POST /presence` answer with.
 *
 * @module
 */
import type { PresenceConfig } from "../config/config.ts";
import { type JsonObject, pick } from "../json.ts";
import type { Member } from "./store.ts";

/** The members of a topic as a `presence` reply carries them. */
export interface PresenceSummary {
  /** Every member, on every node, in no particular order. */
  readonly members: readonly Member[];
  /** How many members there are. */
  readonly clients: number;
  /** How many distinct non-empty `user` values they have. */
  readonly users: number;
}

/**
 * The member a subscription becomes: `info` holds the `fields` that the
 * session's auth info or the subscription's extra fields have (the
 * subscription's value wins), and nothing else; `user` is the `user_field`
 * auth value, a string as it is, any other JSON value as its JSON text, `""`
 * when absent.
 *
 * @example
 * ```ts
 * memberOf("c1", { user_id: 7, session_id: "s" }, { room: "a" }, {
 *   fields: ["user_id", "room"], user_field: "user_id", join_leave: true, ttl: 60,
 * });
 * // { client: "c1", user: "7", info: { user_id: 7, room: "a" } }
 * ```
 */
export function memberOf(
  client: string,
  authInfo: JsonObject,
  extra: JsonObject,
  presence: PresenceConfig,
): Member {
  const info = presence.fields.length === 0 ? {} : pick({ ...authInfo, ...extra }, presence.fields);
  const field = presence.user_field;
  const value = Object.hasOwn(authInfo, field) ? authInfo[field] : undefined;
  const user = value === undefined ? "" : typeof value === "string" ? value : JSON.stringify(value);
  return { client, user, info };
}

/** The summary of a topic's members. */
export function summarize(members: readonly Member[]): PresenceSummary {
  const users = new Set<string>();
  for (const member of members) if (member.user !== "") users.add(member.user);
  return { members, clients: members.length, users: users.size };
}
