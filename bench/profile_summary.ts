/**
 * Summarizes a V8 `.cpuprofile` (from `deno run --cpu-prof`): the functions
 * with the most self time, and the share of the run spent idle, in GC and in
 * the runtime's own code, so that a profile of the fan-out reads in a glance.
 *
 * Usage: `deno run -R bench/profile_summary.ts PROFILE.cpuprofile [--top 25] [--filter TEXT]
 * [--inclusive "#drain,send,get bufferedAmount"]` (inclusive: time in those
 * functions and everything they called, by function name).
 *
 * @module
 */
import { parseArgs } from "node:util";

/** A node of the profile's call tree, as V8 writes it. */
export interface ProfileNode {
  /** The node's id, referenced by `samples` and `children`. */
  readonly id: number;
  /** The function the node stands for. */
  readonly callFrame: {
    readonly functionName: string;
    readonly url: string;
    readonly lineNumber: number;
  };
  /** Samples taken in this node (V8 also writes it; the deltas are used instead). */
  readonly hitCount?: number;
  /** Ids of the nodes it called. */
  readonly children?: number[];
}

/** The parts of a `.cpuprofile` this summary reads. */
export interface CpuProfile {
  /** The call tree. */
  readonly nodes: ProfileNode[];
  /** Start, in microseconds. */
  readonly startTime: number;
  /** End, in microseconds. */
  readonly endTime: number;
  /** The node id of each sample, in order. */
  readonly samples: number[];
  /** Microseconds from the previous sample to each sample. */
  readonly timeDeltas: number[];
}

/** One function's total self time. */
export interface SelfTime {
  /** `name (file:line)`. */
  readonly name: string;
  /** Microseconds sampled in the function itself. */
  readonly micros: number;
  /** Share of all sampled time, in percent. */
  readonly percent: number;
  /** Share of the time the isolate was not idle, in percent. */
  readonly busyPercent: number;
}

/** The pseudo-function V8 samples when the isolate waits in the event loop. */
const IDLE = "(idle)";

function label(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const file = url.replace(/^file:\/\/.*?\/(src|adapters|bench|cli|node_modules)\//, "$1/")
    .replace(/^ext:/, "ext:");
  const name = functionName || "(anonymous)";
  return file ? `${name} (${file}:${lineNumber + 1})` : name;
}

/**
 * Self time per function, summed over every call site, sorted by time.
 * Time is attributed from the sample deltas, so uneven sampling is weighed right.
 */
export function selfTimes(profile: CpuProfile): SelfTime[] {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const micros = new Map<string, number>();
  let total = 0;
  for (let index = 0; index < profile.samples.length; index++) {
    // A sample's time is the delta to the next one (the last one has none).
    const delta = profile.timeDeltas[index + 1] ?? 0;
    const node = byId.get(profile.samples[index]);
    if (!node || delta <= 0) continue;
    const name = label(node);
    micros.set(name, (micros.get(name) ?? 0) + delta);
    total += delta;
  }
  const busy = total - (micros.get(IDLE) ?? 0);
  return [...micros.entries()]
    .map(([name, time]) => ({
      name,
      micros: time,
      percent: time / total * 100,
      busyPercent: name === IDLE ? 0 : time / busy * 100,
    }))
    .sort((a, b) => b.micros - a.micros);
}

/**
 * Inclusive time of each function named in `names` (its own time and its
 * callees'), in microseconds; recursion is counted once per sample.
 */
export function inclusiveTimes(profile: CpuProfile, names: readonly string[]): Map<string, number> {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parents = new Map<number, number>();
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) parents.set(child, node.id);
  }
  const wanted = new Set(names);
  const times = new Map<string, number>(names.map((name) => [name, 0]));
  for (let index = 0; index < profile.samples.length; index++) {
    const delta = profile.timeDeltas[index + 1] ?? 0;
    const seen = new Set<string>();
    for (
      let id: number | undefined = profile.samples[index];
      id !== undefined;
      id = parents.get(id)
    ) {
      const name = byId.get(id)?.callFrame.functionName ?? "";
      if (wanted.has(name) && !seen.has(name)) {
        seen.add(name);
        times.set(name, times.get(name)! + delta);
      }
    }
  }
  return times;
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      top: { type: "string", default: "25" },
      filter: { type: "string" },
      inclusive: { type: "string" },
    },
  });
  if (positionals.length !== 1) {
    console.error("usage: profile_summary.ts PROFILE.cpuprofile [--top N] [--filter TEXT]");
    Deno.exit(2);
  }
  const profile: CpuProfile = JSON.parse(await Deno.readTextFile(positionals[0]));
  const times = selfTimes(profile);
  const shown = values.filter ? times.filter((time) => time.name.includes(values.filter!)) : times;
  const seconds = (profile.endTime - profile.startTime) / 1e6;
  console.log(`profile: ${seconds.toFixed(1)} s, ${profile.samples.length} samples\n`);
  console.log("| self % of all | self % of busy | self ms | function |");
  console.log("|---:|---:|---:|---|");
  for (const time of shown.slice(0, Number(values.top))) {
    const busy = time.name === IDLE ? "" : time.busyPercent.toFixed(1);
    console.log(
      `| ${time.percent.toFixed(1)} | ${busy} | ${
        (time.micros / 1000).toFixed(0)
      } | ${time.name} |`,
    );
  }
  if (values.inclusive) {
    const names = values.inclusive.split(",").map((name) => name.trim());
    console.log("\n| inclusive ms | function (and its callees) |\n|---:|---|");
    for (const [name, micros] of inclusiveTimes(profile, names)) {
      console.log(`| ${(micros / 1000).toFixed(0)} | ${name} |`);
    }
  }
}
