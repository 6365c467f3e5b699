/**
 * The client's errors: {@link SharkError} for what Shark refused or never
 * answered, and the conversions of replies and thrown values into errors.
 *
 * @module
 */
import type { JsonObject } from "./types.ts";

/**
 * An error from Shark: an error reply (`reply.status` is `"error"`), the
 * `unsubscribe` notice of a failed re-authorization (no `status`), or,
 * without `reply`, the client giving up on an answer (disconnected, timed
 * out, closed, unsubscribed).
 *
 * @example
 * ```ts
 * import { SharkClient } from "@shark/shark/client";
 *
 * try {
 *   await new SharkClient("ws://127.0.0.1:9000/").subscribe("books.secret").ready;
 * } catch (error) {
 *   if (error instanceof SharkError) console.log(error.message, error.reply?.data);
 * }
 * ```
 */
export class SharkError extends Error {
  /** The frame from Shark, when Shark said it. */
  readonly reply?: JsonObject;

  constructor(message: string, reply?: JsonObject) {
    super(message);
    this.name = "SharkError";
    this.reply = reply;
  }
}

/** The {@link SharkError} of an error reply or notice: its `error` text, the frame kept. */
export function errorOf(reply: JsonObject): SharkError {
  const text = reply.error;
  return new SharkError(typeof text === "string" ? text : JSON.stringify(text ?? null), reply);
}

/** A thrown value as an `Error` (an application's hook may throw anything). */
export function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
