/**
 * What the CLI adds to `/metrics` about Shark's own transport (SPEC section
 * 9): which writer the start-up self-check chose, and the write completions
 * the handle writer did not wait for (0 while the runtime behaves as
 * `cli/transport/chunk_writer.ts` assumes).
 *
 * @module
 */
import { gauge } from "./memory_metrics.ts";
import type { TransportScheduler } from "./transport/scheduler.ts";

/**
 * The transport's samples, in the Prometheus text format.
 *
 * @example
 * ```ts
 * import { TransportScheduler } from "./transport/scheduler.ts";
 * transportMetrics(new TransportScheduler()); // 'shark_transport_writer{kind="stream"} 1\n...'
 * ```
 */
export function transportMetrics(scheduler: TransportScheduler): string {
  const kind = scheduler.writer.kind;
  return "# HELP shark_transport_writer The writer of the own transport: handle or stream\n" +
    "# TYPE shark_transport_writer gauge\n" +
    `shark_transport_writer{kind="${kind}"} 1\n` +
    gauge(
      "shark_transport_unexpected_write_completions_total",
      "Write completions the handle writer did not wait for (the runtime broke its assumptions)",
      scheduler.unexpectedCompletions,
      "counter",
    );
}
