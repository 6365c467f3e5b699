/**
 * The numbers a history test expects: offsets and sequence numbers that
 * must arrive gapless.
 *
 * @module
 */

/** The whole numbers from `from` to `to`, both included. */
export function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}
