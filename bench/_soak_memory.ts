/**
 * The memory bar of `deno task soak` (issue 10: RSS at the end within 10 % of
 * RSS after the first minute), as a pure function of the samples, so that
 * what it compares is stated once and unit-tested.
 *
 * A single RSS sample is no baseline: under steady load V8's heap saws up
 * and down by tens of MiB between major collections (the heap grows until
 * its limit, a mark-compact frees it), so two samples differ by where in that
 * cycle each fell. The bar compares the mean of a window of samples after
 * the warm-up with the mean of a window as long at the end. Growth that goes
 * on through the run moves the end window's mean and fails the bar; a
 * sawtooth without a trend does not. What grew during the warm-up is
 * reported next to it, never dropped.
 *
 * With `--gc-trace`, V8's trace gives the live heap (what each mark-compact
 * left), which heap sizing leaves flat and a leak in JS objects raises.
 *
 * @module
 */

/** One reading of Shark's memory, `s` seconds after the load started. */
export interface MemorySample {
  readonly s: number;
  readonly rss_mib: number;
  /** V8 heap in use (`deno_heap_used_bytes`), when `/metrics` answered. */
  readonly heap_used_mib?: number;
  /** V8 heap reserved (`deno_heap_total_bytes`). */
  readonly heap_total_mib?: number;
}

/** The means of the samples in `[from_s, to_s]`. */
export interface WindowMeans {
  readonly from_s: number;
  readonly to_s: number;
  readonly samples: number;
  readonly rss_mib: number;
  readonly heap_used_mib: number;
  readonly heap_total_mib: number;
}

/** What the bar compares, and whether the run met it. */
export interface MemoryVerdict {
  /** The first window after the warm-up. */
  readonly baseline: WindowMeans;
  /** The last window of the run. */
  readonly end: WindowMeans;
  /** `end.rss_mib / baseline.rss_mib`. */
  readonly ratio: number;
  /** `ratio <= 1 + tolerance`. */
  readonly flat: boolean;
  /** The first sample's RSS (the load just started), for the warm-up's growth. */
  readonly start_rss_mib: number;
}

/** Where the windows lie, in seconds since the load started. */
export interface MemoryBar {
  /** The end of the warm-up: the baseline window starts here. */
  readonly warmupS: number;
  /** The end of the run: the end window ends here. */
  readonly endS: number;
  /** The length of each window. */
  readonly windowS: number;
  /** The growth allowed, 0.1 for 10 %. */
  readonly tolerance: number;
}

function mean(values: readonly number[]): number {
  return values.length === 0 ? NaN : values.reduce((sum, value) => sum + value, 0) / values.length;
}

/** `value` to one decimal. */
export function round(value: number): number {
  return Math.round(value * 10) / 10;
}

/** The means of the samples taken from `from` to `to` seconds (both included). */
export function windowMeans(
  samples: readonly MemorySample[],
  from: number,
  to: number,
): WindowMeans {
  const inside = samples.filter((sample) => sample.s >= from && sample.s <= to);
  const of = (field: "heap_used_mib" | "heap_total_mib") =>
    round(mean(inside.map((sample) => sample[field] ?? NaN).filter((value) => !isNaN(value))));
  return {
    from_s: from,
    to_s: to,
    samples: inside.length,
    rss_mib: round(mean(inside.map((sample) => sample.rss_mib))),
    heap_used_mib: of("heap_used_mib"),
    heap_total_mib: of("heap_total_mib"),
  };
}

/**
 * Compares the mean RSS of the window after the warm-up with that of the
 * window at the end. Throws when the windows overlap or one holds no sample:
 * such a run measures nothing.
 *
 * @example
 * ```ts
 * const verdict = memoryVerdict(samples, { warmupS: 300, endS: 2100, windowS: 120, tolerance: 0.1 });
 * if (!verdict.flat) console.log(`RSS grew ${verdict.ratio}x`);
 * ```
 */
export function memoryVerdict(samples: readonly MemorySample[], bar: MemoryBar): MemoryVerdict {
  const { warmupS, endS, windowS, tolerance } = bar;
  if (warmupS + windowS > endS - windowS) {
    throw new Error(
      `the windows overlap: ${windowS} s after ${warmupS} s and ${windowS} s before ${endS} s`,
    );
  }
  const baseline = windowMeans(samples, warmupS, warmupS + windowS);
  const end = windowMeans(samples, endS - windowS, endS);
  if (baseline.samples === 0 || end.samples === 0) {
    throw new Error(`no memory sample in a window: ${JSON.stringify({ baseline, end })}`);
  }
  const ratio = end.rss_mib / baseline.rss_mib;
  return { baseline, end, ratio, flat: ratio <= 1 + tolerance, start_rss_mib: samples[0].rss_mib };
}

/** One major collection in V8's `--trace-gc` output: when, and the heap it left. */
export interface MarkCompact {
  /** Seconds since the load started. */
  readonly s: number;
  /** The heap in use after it: the live heap (V8 prints MiB, as "MB"). */
  readonly live_mib: number;
}

/** `[pid:isolate]  T ms: [Incremental ]Mark-Compact[ (reason)] A (B) -> C (D) MB, ...`. */
const MARK_COMPACT =
  /^\[[^\]]*\]\s+([\d.]+) ms: (?:Incremental )?Mark-Compact (?:\([^)]*\) )?[\d.]+ \([\d.]+\) -> ([\d.]+) \(/;

/**
 * The mark-compacts of a `--trace-gc` trace; `offsetS` is how long before
 * the load the traced process started (the trace counts from there).
 *
 * @example
 * ```ts
 * const majors = markCompacts(await Deno.readTextFile("gc.txt"), 2.5);
 * console.log(majors.at(-1)?.live_mib);
 * ```
 */
export function markCompacts(trace: string, offsetS: number): MarkCompact[] {
  const majors: MarkCompact[] = [];
  for (const line of trace.split("\n")) {
    const match = MARK_COMPACT.exec(line);
    if (match) {
      majors.push({ s: round(Number(match[1]) / 1000 - offsetS), live_mib: Number(match[2]) });
    }
  }
  return majors;
}
