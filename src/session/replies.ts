/**
 * Replies to client events (SPEC section 1) as SocketShark words them: the
 * event's name, its status, the subscription's extra fields echoed (without
 * overriding `data` or `subscription`), and the error a failed event is
 * answered with.
 *
 * @module
 */
import type { JsonObject } from "../json.ts";
import type { Session } from "./session.ts";

/** An event failed in a way the client is told about; the connection stays. */
export class EventError extends Error {
  readonly error: unknown;
  readonly data: unknown;

  constructor(error: unknown, data?: unknown) {
    super(String(error));
    this.error = error;
    this.data = data;
  }
}

/** What every reply to one event carries besides its status. */
export interface ReplyContext {
  readonly event: string;
  subscription?: string;
  extra: JsonObject;
  /**
   * Keys a successful reply carries after all others: a subscribe's position
   * and client id, a presence reply's members.
   */
  tail?: JsonObject;
}

/** Cuts a string to `max` characters without splitting a surrogate pair. */
export function cut(text: string, max: number): string {
  return text.length <= max ? text : [...text].slice(0, max).join("");
}

/** Replies as SocketShark does: extra fields may not override `data` or `subscription`. */
export function reply(
  session: Session,
  context: ReplyContext,
  status: "ok" | "error",
  data?: unknown,
  error?: unknown,
): void {
  // Spread, not Object.assign: a client's "__proto__" extra field stays a plain key.
  const reply: JsonObject = status === "ok"
    ? { event: context.event, status, ...context.extra }
    : { event: context.event, status, error, ...context.extra };
  if (data !== undefined && data !== null) reply.data = data;
  if (context.subscription) reply.subscription = context.subscription;
  if (status === "ok" && context.tail) Object.assign(reply, context.tail);
  session.send(reply);
}
