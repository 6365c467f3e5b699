/**
 * Memory gauges the CLI adds to `/metrics` (SPEC section 7 lists the
 * engine's; these need `Deno.memoryUsage()`, which `src/` may not call):
 * the process's resident memory, and each isolate's V8 heap. RSS alone
 * cannot tell a leak from the V8 heap growing to its working size or from
 * memory the allocator keeps after a collection; next to the heap figures
 * it can.
 *
 * @module
 */

/** Gauges of one isolate's V8 heap; with `--workers`, one sample per isolate. */
const ISOLATE_GAUGES = [
  ["deno_heap_used_bytes", "heapUsed", "V8 heap in use by objects, live or not yet collected"],
  ["deno_heap_total_bytes", "heapTotal", "V8 heap reserved for objects (used and free)"],
  ["deno_external_memory_bytes", "external", "Memory outside the V8 heap held by JS objects"],
] as const;

/** One sample of a metric without labels, with its help and type lines. */
export function gauge(
  name: string,
  help: string,
  value: number,
  type: "gauge" | "counter" = "gauge",
): string {
  return `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${name} ${value}\n`;
}

/**
 * This isolate's heap gauges, in the Prometheus text format, from `usage`
 * (a reading already taken; by default one taken now).
 *
 * @example
 * ```ts
 * isolateMemoryMetrics(); // "# HELP deno_heap_used_bytes ...\ndeno_heap_used_bytes 8417280\n..."
 * ```
 */
export function isolateMemoryMetrics(usage: Deno.MemoryUsage = Deno.memoryUsage()): string {
  return ISOLATE_GAUGES.map(([name, field, help]) => gauge(name, help, usage[field])).join("");
}

/**
 * `process_resident_memory_bytes`, the whole process's RSS (every isolate),
 * in the Prometheus text format, from `usage` (by default a reading taken now).
 *
 * @example
 * ```ts
 * processMemoryMetrics(); // "# HELP process_resident_memory_bytes ...\nprocess_resident_memory_bytes 97206272\n"
 * ```
 */
export function processMemoryMetrics(usage: Deno.MemoryUsage = Deno.memoryUsage()): string {
  return gauge(
    "process_resident_memory_bytes",
    "Resident memory of the process (all isolates)",
    usage.rss,
  );
}
