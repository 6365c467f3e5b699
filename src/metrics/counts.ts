/**
 * The labelled counters of `Metrics` (`metrics.ts`, SPEC section 7): counts
 * by one or two label values, kept without a key string per count, and what
 * the Prometheus text format needs of them. The latency histogram is in
 * `histogram.ts`.
 *
 * @module
 */

/** Counts by one label value. */
export type ByOne = Map<string, number>;
/** Counts by two label values, without building a key string per count. */
export type ByTwo = Map<string, Map<string, number>>;

/** Adds `by` to the count of `value`. */
export function countOne(counts: ByOne, value: string, by = 1): void {
  counts.set(value, (counts.get(value) ?? 0) + by);
}

/** Adds one to the count of `first`, `second`. */
export function countTwo(counts: ByTwo, first: string, second: string): void {
  let row = counts.get(first);
  if (!row) counts.set(first, row = new Map());
  row.set(second, (row.get(second) ?? 0) + 1);
}

/** The label values and count of every cell of a one- or two-label counter. */
export function cells(counts: ByOne | ByTwo): [string[], number][] {
  const out: [string[], number][] = [];
  for (const [first, value] of counts) {
    if (typeof value === "number") out.push([[first], value]);
    else for (const [second, count] of value) out.push([[first, second], count]);
  }
  return out;
}

/** A label value as the Prometheus text format quotes it. */
export function escapeLabel(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`));
}
