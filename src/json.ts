/**
 * JSON values as the engine handles them: objects, their fields, equality
 * and depth.
 *
 * @module
 */

/** A JSON object (not an array, not null). */
export type JsonObject = Record<string, unknown>;

/** A shared empty object for the common "no fields" case: frozen, never mutated. */
export const EMPTY: JsonObject = Object.freeze({});

/** Whether `value` is a plain JSON object. */
export function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Whether parsed JSON nests deeper than `limit` arrays/objects. Iterative, so
 * that a hostile value cannot exhaust the stack of the check itself.
 */
export function nestsDeeperThan(value: unknown, limit: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [item, depth] = stack.pop()!;
    if (typeof item !== "object" || item === null) continue;
    if (depth > limit) return true;
    for (const child of Array.isArray(item) ? item : Object.values(item)) {
      if (typeof child === "object" && child !== null) stack.push([child, depth + 1]);
    }
  }
  return false;
}

/** Equality of JSON values, as Python's `==` compares decoded JSON. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const keysA = Object.keys(a);
  const keysB = Object.keys(b);
  if (keysA.length !== keysB.length) return false;
  const recordA = a as JsonObject;
  const recordB = b as JsonObject;
  return keysA.every((key) => Object.hasOwn(recordB, key) && jsonEqual(recordA[key], recordB[key]));
}

/**
 * A decimal number as Python's `float()` reads one (its infinities and NaN
 * aside): `_` only between two digits, no `0x`/`0b`/`0o` prefix, which
 * `Number()` would take.
 */
const PYTHON_FLOAT =
  /^[+-]?(?:\d(?:_?\d)*(?:\.(?:\d(?:_?\d)*)?)?|\.\d(?:_?\d)*)(?:[eE][+-]?\d(?:_?\d)*)?$/;

/**
 * Reads a number the way SocketShark's `float()` does for `order` and
 * `throttle`: a finite number or a string `float()` accepts (surrounding
 * whitespace and digit separators included); anything else, infinities and
 * NaN too, is `undefined`.
 */
export function parseNumber(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isFinite(value) ? value : undefined;
  if (typeof value !== "string") return undefined;
  const text = value.trim();
  if (!PYTHON_FLOAT.test(text)) return undefined;
  const number = Number(text.includes("_") ? text.replaceAll("_", "") : text);
  return Number.isFinite(number) ? number : undefined;
}

/**
 * Picks the keys of `fields` present in `source`, in the order of `fields`;
 * {@link EMPTY} when there are none.
 */
export function pick(source: JsonObject, fields: readonly string[]): JsonObject {
  let picked: JsonObject | undefined;
  for (const field of fields) {
    if (Object.hasOwn(source, field)) {
      picked ??= {};
      // defineProperty, not assignment: "__proto__" must stay a plain key.
      Object.defineProperty(picked, field, {
        value: source[field],
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
  }
  return picked ?? EMPTY;
}
