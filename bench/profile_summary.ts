/**
 * Summarizes a V8 `.cpuprofile` (from `deno run --cpu-prof`): the functions
 * with the most self time, and the share of the run spent idle, in GC and in
 * the runtime's own code, so that a profile of the fan-out reads in a glance.
 *
 * Usage: `deno run -R bench/profile_summary.ts PROFILE.cpuprofile [--top 25] [--filter TEXT]
 * [--inclusive "#drain,send,get bufferedAmount"] [--from parseHead] [--areas]` (inclusive: time
 * in those functions and everything they called, by function name; from: samples before the
 * first one with that function on its stack are left out, e.g. the start-up before the first
 * connection; areas: self time by file, runtime extension or npm package).
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
 * Self time per function (or per what `keyOf` names a frame by), summed over
 * every call site, sorted by time. Time is attributed from the sample
 * deltas, so uneven sampling is weighed right.
 */
export function selfTimes(
  profile: CpuProfile,
  keyOf: (node: ProfileNode) => string = label,
): SelfTime[] {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const micros = new Map<string, number>();
  let total = 0;
  for (let index = 0; index < profile.samples.length; index++) {
    // A sample's time is the delta to the next one (the last one has none).
    const delta = profile.timeDeltas[index + 1] ?? 0;
    const node = byId.get(profile.samples[index]);
    if (!node || delta <= 0) continue;
    const name = keyOf(node);
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
 * The profile from the first sample with a function named `name` on its
 * stack on (the profile itself when none has one): the start-up before the
 * first connection would otherwise weigh in every share.
 */
export function startingAt(profile: CpuProfile, name: string): CpuProfile {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parents = parentsOf(profile);
  const first = profile.samples.findIndex((sample) => {
    for (let id: number | undefined = sample; id !== undefined; id = parents.get(id)) {
      if (byId.get(id)?.callFrame.functionName === name) return true;
    }
    return false;
  });
  if (first <= 0) return profile;
  return {
    ...profile,
    samples: profile.samples.slice(first),
    timeDeltas: [0, ...profile.timeDeltas.slice(first + 1)],
  };
}

/** Where a frame's code lives: its file, the runtime extension or the npm package. */
function areaOf(node: ProfileNode): string {
  const url = node.callFrame.url;
  if (url === "") return node.callFrame.functionName.startsWith("op_") ? "(ops)" : label(node);
  const ext = /^ext:([^/]+)\//.exec(url);
  if (ext) return `ext:${ext[1]}`;
  const npm = /node_modules\/\.deno\/([^/]+?)@\d/.exec(url);
  if (npm) return `npm:${npm[1].replace("+", "/")}`;
  return label(node).replace(/^.*\((.*):\d+\)$/, "$1");
}

/** Self time per area ({@link areaOf}), sorted by time (idle left out). */
export function areaTimes(profile: CpuProfile): SelfTime[] {
  return selfTimes(profile, areaOf).filter((time) => time.name !== IDLE);
}

function parentsOf(profile: CpuProfile): Map<number, number> {
  const parents = new Map<number, number>();
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) parents.set(child, node.id);
  }
  return parents;
}

/**
 * Inclusive time of each function named in `names` (its own time and its
 * callees'), in microseconds; recursion is counted once per sample.
 */
export function inclusiveTimes(profile: CpuProfile, names: readonly string[]): Map<string, number> {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parents = parentsOf(profile);
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
      from: { type: "string" },
      areas: { type: "boolean", default: false },
    },
  });
  if (positionals.length !== 1) {
    console.error("usage: profile_summary.ts PROFILE.cpuprofile [--top N] [--filter TEXT]");
    Deno.exit(2);
  }
  const whole: CpuProfile = JSON.parse(await Deno.readTextFile(positionals[0]));
  const profile = values.from ? startingAt(whole, values.from) : whole;
  const times = selfTimes(profile);
  const shown = values.filter ? times.filter((time) => time.name.includes(values.filter!)) : times;
  const seconds = profile.timeDeltas.reduce((sum, delta) => sum + delta, 0) / 1e6;
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
  if (values.areas) {
    console.log("\n| self % of busy | self ms | area |\n|---:|---:|---|");
    for (const area of areaTimes(profile).slice(0, Number(values.top))) {
      console.log(
        `| ${area.busyPercent.toFixed(1)} | ${(area.micros / 1000).toFixed(0)} | ${area.name} |`,
      );
    }
  }
  if (values.inclusive) {
    const names = values.inclusive.split(",").map((name) => name.trim());
    console.log("\n| inclusive ms | function (and its callees) |\n|---:|---|");
    for (const [name, micros] of inclusiveTimes(profile, names)) {
      console.log(`| ${(micros / 1000).toFixed(0)} | ${name} |`);
    }
  }
}
