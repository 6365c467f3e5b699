/**
 * A latency histogram in the Prometheus text format (SPEC section 7): fixed
 * buckets, counted as observed and made cumulative only when rendered.
 *
 * @module
 */

/** Bucket bounds in seconds, from a fast local service to a retried slow one. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * Durations counted by bucket.
 *
 * @example
 * ```ts
 * const histogram = new LatencyHistogram();
 * histogram.observe(0.02);
 * console.log(histogram.exposition("shark_callback_duration_seconds", 'callback="auth"'));
 * ```
 */
export class LatencyHistogram {
  readonly counts: number[] = new Array(LATENCY_BUCKETS.length).fill(0);
  count = 0;
  sum = 0;

  observe(seconds: number): void {
    this.count++;
    this.sum += seconds;
    for (let i = 0; i < LATENCY_BUCKETS.length; i++) {
      if (seconds <= LATENCY_BUCKETS[i]) {
        this.counts[i]++;
        return;
      }
    }
  }

  /** The `_bucket`, `_sum` and `_count` lines of metric `name` with the rendered `label`. */
  exposition(name: string, label: string): string[] {
    const lines: string[] = [];
    let cumulative = 0;
    LATENCY_BUCKETS.forEach((bound, i) => {
      cumulative += this.counts[i];
      lines.push(`${name}_bucket{${label},le="${bound}"} ${cumulative}`);
    });
    lines.push(
      `${name}_bucket{${label},le="+Inf"} ${this.count}`,
      `${name}_sum{${label}} ${this.sum}`,
      `${name}_count{${label}} ${this.count}`,
    );
    return lines;
  }
}
