/**
 * Join and leave on their way to the subscribers of a topic (SPEC section
 * 12): a join/leave payload taken from the topic's channel becomes one
 * `join` or `leave` frame per subscriber, except to the member's own
 * session, with that subscription's extra fields and nothing else: no
 * delivery metadata, no filter, order or throttle.
 *
 * @module
 */
import { ServerEvent } from "../protocol.ts";
import type { Notice } from "../delivery/subscription.ts";
import { parsePresence, type PresenceChange } from "./presence_payload.ts";

/** One join or leave, its frame start serialized once for every subscriber. */
export class PresenceNotice implements Notice {
  readonly event: "join" | "leave";
  /** The member's client id: its own session gets no notice. */
  readonly client: string;
  /** `{"event":…,"subscription":…,"member":…` without the closing brace. */
  readonly #start: string;
  #plain: string | undefined;

  constructor(topic: string, change: PresenceChange) {
    this.event = change.kind === "join" ? ServerEvent.join : ServerEvent.leave;
    this.client = change.member.client;
    this.#start = `{"event":"${this.event}","subscription":${
      JSON.stringify(topic)
    },"member":${change.memberJson}`;
  }

  frame(extra: string): string {
    if (extra === "") return this.#plain ??= `${this.#start}}`;
    return `${this.#start}${extra}}`;
  }
}

/**
 * The notice a join/leave payload of `topic` announces, or `undefined` when
 * the payload is not a well-formed one: then it is an envelope like any other.
 */
export function presenceNotice(topic: string, payload: string): PresenceNotice | undefined {
  const change = parsePresence(payload);
  return change && new PresenceNotice(topic, change);
}
