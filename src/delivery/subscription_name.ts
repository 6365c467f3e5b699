/**
 * Subscription names (SPEC sections 1, 3 and 8): `SERVICE.TOPIC`, the service
 * being the part before the first `.`; neither part may be empty. A name is
 * at most {@link MAX_SUBSCRIPTION_LENGTH} characters of well-formed Unicode
 * without control characters: it becomes a pub/sub channel name and appears
 * in log lines, where a newline would start a line of its own. Clients'
 * `subscribe`, `message` and `unsubscribe` events and published envelopes
 * are held to the same rule.
 *
 * @module
 */

/** The longest subscription name, in UTF-16 code units. */
export const MAX_SUBSCRIPTION_LENGTH = 256;

/** Control characters (C0, DEL, C1) and the Unicode line and paragraph separators. */
const CONTROL = /[\p{Cc}\u2028\u2029]/u;

/**
 * The service of a subscription name, or `undefined` when the name is not a
 * valid `SERVICE.TOPIC`.
 *
 * @example
 * ```ts
 * serviceOf("books.book_1"); // "books"
 * serviceOf("books.shelf.1"); // "books"
 * serviceOf("books."); // undefined
 * serviceOf("books.a\nb"); // undefined
 * ```
 */
export function serviceOf(name: string): string | undefined {
  const dot = name.indexOf(".");
  if (dot <= 0 || dot === name.length - 1 || name.length > MAX_SUBSCRIPTION_LENGTH) {
    return undefined;
  }
  return CONTROL.test(name) || !name.isWellFormed() ? undefined : name.slice(0, dot);
}
