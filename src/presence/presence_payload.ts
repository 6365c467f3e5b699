/**
 * The join/leave payload (SPEC section 12): how a presence change travels on
 * a topic's own channel, next to the topic's messages, so that every node
 * receives joins, leaves and messages of a topic in one order.
 *
 * The format is fixed here and nowhere else (the Redis store's script builds
 * the same bytes by concatenation):
 * ```
 * {"shark.presence":"join","subscription":<topic as JSON>,"member":<member JSON>}
 * ```
 * The key `"shark.presence"` comes first so that the hub recognizes a change
 * with one `startsWith` before any JSON parse: the fan-out of an ordinary
 * message costs no more than that check. The member's JSON is
 * {@link memberJson}'s text, kept by the store and reused for the leave.
 *
 * @module
 */
import { isObject } from "../json.ts";
import type { Member } from "./store.ts";

/** How every join/leave payload starts, and no envelope a service writes does. */
export const PRESENCE_PREFIX = '{"shark.presence":';

/** Whether a member became one (`join`) or stopped being one (`leave`). */
export type PresenceChangeKind = "join" | "leave";

/** A join/leave payload as the hub reads it. */
export interface PresenceChange {
  /** Whether the member joined or left. */
  readonly kind: PresenceChangeKind;
  /** The member. */
  readonly member: Member;
  /** The member's JSON text as the payload carried it, to be written to clients as is. */
  readonly memberJson: string;
}

/**
 * A member's JSON text: `{"client":…,"user":…,"info":{…}}`, in that key order.
 *
 * @example
 * ```ts
 * memberJson({ client: "c1", user: "u1", info: { name: "Ann" } });
 * // '{"client":"c1","user":"u1","info":{"name":"Ann"}}'
 * ```
 */
export function memberJson(member: Member): string {
  return JSON.stringify({ client: member.client, user: member.user, info: member.info });
}

/**
 * The payload announcing that a member joined or left `topic`.
 *
 * @param member the member's JSON text, as {@link memberJson} wrote it.
 *
 * @example
 * ```ts
 * presencePayload("join", "chat.room", '{"client":"c1","user":"","info":{}}');
 * // '{"shark.presence":"join","subscription":"chat.room","member":{"client":"c1","user":"","info":{}}}'
 * ```
 */
export function presencePayload(kind: PresenceChangeKind, topic: string, member: string): string {
  return `${PRESENCE_PREFIX}"${kind}","subscription":${JSON.stringify(topic)},"member":${member}}`;
}

/**
 * The change a payload announces, or `undefined` when it is not a well-formed
 * join/leave payload (then it is handled as an ordinary envelope). Cheap for
 * the common case: a payload that does not start with {@link PRESENCE_PREFIX}
 * is refused without parsing.
 */
export function parsePresence(payload: string): PresenceChange | undefined {
  if (!payload.startsWith(PRESENCE_PREFIX)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload);
  } catch {
    return undefined;
  }
  if (!isObject(parsed)) return undefined;
  const kind = parsed["shark.presence"];
  if (kind !== "join" && kind !== "leave") return undefined;
  const member = parsed.member;
  if (!isObject(member)) return undefined;
  const { client, user, info } = member;
  if (typeof client !== "string" || typeof user !== "string" || !isObject(info)) return undefined;
  return { kind, member: { client, user, info }, memberJson: memberJson({ client, user, info }) };
}
