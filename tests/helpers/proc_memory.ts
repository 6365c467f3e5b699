/**
 * The memory of a process, read from `/proc/PID/status` (Linux), for the
 * tests that bound what a server holds and for the benchmarks.
 *
 * @module
 */

/** Resident memory of the processes `pids` now, in KiB (0 for one that is gone). */
export function rssOfKiB(pids: readonly number[]): number {
  let total = 0;
  for (const pid of pids) total += statusField(pid, "VmRSS");
  return total;
}

/** The peak resident memory of one process (`VmHWM`), in KiB. */
export function peakRssKiB(pid: number): number {
  return statusField(pid, "VmHWM");
}

function statusField(pid: number, field: string): number {
  try {
    const text = Deno.readTextFileSync(`/proc/${pid}/status`);
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}
