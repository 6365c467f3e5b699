/**
 * Subscription names (SPEC sections 1 and 3): `SERVICE.TOPIC`, the service
 * being the part before the first `.`; neither part may be empty. Clients'
 * `subscribe` and `message` events and published envelopes are held to the
 * same rule.
 *
 * @module
 */

/**
 * The service of a subscription name, or `undefined` when the name is not
 * `SERVICE.TOPIC`.
 *
 * @example
 * ```ts
 * serviceOf("books.book_1"); // "books"
 * serviceOf("books.shelf.1"); // "books"
 * serviceOf("books."); // undefined
 * ```
 */
export function serviceOf(name: string): string | undefined {
  const dot = name.indexOf(".");
  return dot > 0 && dot < name.length - 1 ? name.slice(0, dot) : undefined;
}
