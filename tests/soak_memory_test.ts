/**
 * The memory bar of `deno task soak` (`bench/_soak_memory.ts`): the mean RSS
 * of a window after the warm-up against the mean of a window at the end. Fed
 * with the shape a real run has: V8's heap sawing between major collections
 * (`deno task soak -- --minutes 30`, 10,000 deliveries/s: RSS from about 180
 * to 245 MiB and back about every 80 s, the teeth growing to that height in
 * the first 4 minutes).
 */
import assert from "node:assert/strict";
import { markCompacts, type MemorySample, memoryVerdict } from "../bench/_soak_memory.ts";

const WARMUP_S = 300;
const END_S = WARMUP_S + 30 * 60;
const BAR = { warmupS: WARMUP_S, endS: END_S, windowS: 300, tolerance: 0.1 };
const PERIOD_S = 80;

/**
 * RSS sampled every 5 s: teeth from 180 MiB up by 65 MiB once warmed up
 * (less before), shifted by `phaseS`, plus `leakMiBPerMinute` since the start.
 */
function run(phaseS: number, leakMiBPerMinute = 0): MemorySample[] {
  const samples: MemorySample[] = [];
  for (let s = 0; s <= END_S; s += 5) {
    const height = 65 * Math.min(1, 0.3 + s / 240);
    const tooth = ((s + phaseS) % PERIOD_S) / PERIOD_S;
    samples.push({ s, rss_mib: 180 + height * tooth + leakMiBPerMinute * s / 60 });
  }
  return samples;
}

const PHASES = Array.from({ length: PERIOD_S / 5 }, (_, i) => i * 5);

Deno.test("soak bar: a GC sawtooth without a trend meets the bar, whatever the phase of the windows", () => {
  for (const phase of PHASES) {
    const verdict = memoryVerdict(run(phase), BAR);
    assert.ok(verdict.flat, `phase ${phase} s: ${JSON.stringify(verdict)}`);
    assert.ok(Math.abs(verdict.ratio - 1) < 0.03, `phase ${phase} s: ${verdict.ratio}`);
  }
});

Deno.test("soak bar: a leak of 1 MiB a minute (870 bytes per churned client at 20 a second) fails it, whatever the phase", () => {
  for (const phase of PHASES) {
    const verdict = memoryVerdict(run(phase, 1), BAR);
    assert.equal(verdict.flat, false, `phase ${phase} s: ${JSON.stringify(verdict)}`);
  }
});

Deno.test("soak bar: the warm-up's growth is not compared but reported, from the first sample", () => {
  const samples = run(0);
  const verdict = memoryVerdict(samples, BAR);
  assert.equal(verdict.start_rss_mib, 180);
  assert.deepEqual([verdict.baseline.from_s, verdict.baseline.to_s], [300, 600]);
  assert.deepEqual([verdict.end.from_s, verdict.end.to_s], [1800, 2100]);
  assert.equal(verdict.baseline.samples, 61);
});

Deno.test("soak bar: windows that overlap, or hold no sample, are refused", () => {
  assert.throws(() => memoryVerdict(run(0), { ...BAR, windowS: 1000 }), /the windows overlap/);
  assert.throws(
    () => memoryVerdict(run(0).filter((sample) => sample.s < 1500), BAR),
    /no memory sample in a window/,
  );
});

Deno.test("soak --gc-trace: the heap left by each mark-compact is read from V8's trace, scavenges ignored", () => {
  const trace = [
    "[6672:0x560ad41bc000]   187388 ms: Incremental Mark-Compact 56.0 (115.9) -> 41.8 (111.9) MB, pooled: 3.5 MB, 8.07 / 0.00 ms (+ 31.2 ms in 132 steps since start of marking, biggest step 4.5 ms, walltime since start of marking 1203 ms) finalize incremental marking via stack guard; GC in old space requested",
    "[6672:0x560ad41bc000]   189001 ms: Scavenge 70.1 (120.2) -> 52.3 (121.0) MB, pooled: 0.0 MB, 10.59 / 0.00 ms (average mu = 0.980, current mu = 0.980) allocation failure; ",
    "[6672:0x560ad41bc000]   290286 ms: Incremental Mark-Compact (reduce) 153.5 (195.0) -> 47.3 (132.1) MB, pooled: 0.0 MB, 45.78 / 0.00 ms (+ 68.5 ms in 291 steps since start of marking) finalize incremental marking via task; GC in old space requested",
    "[6672:0x560ad41bc000]   297334 ms: Mark-Compact 60.8 (144.3) -> 52.9 (79.7) MB, pooled: 64.5 MB, 27.16 / 0.00 ms (average mu = 0.990, current mu = 0.985) allocation failure; GC in old space requested",
  ].join("\n");
  assert.deepEqual(markCompacts(trace, 2), [
    { s: 185.4, live_mib: 41.8 },
    { s: 288.3, live_mib: 47.3 },
    { s: 295.3, live_mib: 52.9 },
  ]);
});
