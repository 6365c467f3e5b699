/**
 * Small helpers shared by the engine.
 *
 * @module
 */
import { type Clock, REAL_CLOCK } from "./clock.ts";

/** A JSON object (not an array, not null). */
export type JsonObject = Record<string, unknown>;

/** A shared empty object for the common "no fields" case: frozen, never mutated. */
export const EMPTY: JsonObject = Object.freeze({});

/** Whether `value` is a plain JSON object. */
export function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * The longest delay a timer takes: 2^31 − 1 ms, about 24.8 days. A longer
 * one overflows and fires at once.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Resolves after `ms` milliseconds of `clock`, or at once when `signal` aborts. */
export function delay(ms: number, signal?: AbortSignal, clock: Clock = REAL_CLOCK): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clock.clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = clock.setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
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

/** The two timestamps formatted last: `received_at` and `sent_at` alternate. */
const isoCache: [number, string, number, string] = [NaN, "", NaN, ""];

/**
 * `new Date(millis).toISOString()` (which costs about 1.5 µs), formatted once
 * per millisecond: a burst stamps thousands of envelopes within the same few
 * milliseconds.
 */
export function isoTime(millis: number = Date.now()): string {
  const cache = isoCache;
  if (millis === cache[0]) return cache[1];
  if (millis === cache[2]) return cache[3];
  const text = new Date(millis).toISOString();
  cache[2] = cache[0];
  cache[3] = cache[1];
  cache[0] = millis;
  cache[1] = text;
  return text;
}

/** A random id for a session, short enough to read in logs. */
export function randomId(): string {
  return crypto.randomUUID().slice(0, 13).replace("-", "");
}

/** The body of `message` was larger than allowed. */
export class BodyTooLarge extends Error {
  override readonly name = "BodyTooLarge";
}

/** Reads a request or response body as text, refusing more than `limit` bytes. */
export async function readLimited(message: Request | Response, limit: number): Promise<string> {
  const length = message.headers.get("content-length");
  const declared = Number(length);
  if (declared > limit) {
    await message.body?.cancel();
    throw new BodyTooLarge(`body of ${declared} bytes exceeds ${limit}`);
  }
  // A declared length is enforced by the HTTP layer: the runtime's own
  // text() is then safe, and much cheaper than reading the stream in JS.
  if (length !== null) return await message.text();
  if (!message.body) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of message.body) {
    size += chunk.byteLength;
    if (size > limit) throw new BodyTooLarge(`body exceeds ${limit} bytes`);
    chunks.push(chunk);
  }
  const all = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(all);
}

/** Compares two strings in time independent of where they differ. */
export function constantTimeEqual(a: string, b: string): boolean {
  let difference = a.length ^ b.length;
  for (let i = 0; i < b.length; i++) {
    difference |= (a.charCodeAt(i % (a.length || 1)) || 0) ^ b.charCodeAt(i);
  }
  return difference === 0;
}
