/**
 * The memory bar of `deno task soak` (`bench/_soak_memory.ts`): the mean RSS
 * of a window after the warm-up against the mean of a window at the end. Fed
 * with the shape a real run has: V8's heap sawing between major collections
 * (`deno task soak -- --minutes 30`, 10,000 deliveries/s: RSS from about 180
 * to 245 MiB and back about every 80 s, the teeth growing to that height in
 * the first 4 minutes).
 */
import assert from "node:assert/strict";
import { type MemorySample, memoryVerdict } from "../bench/_soak_memory.ts";

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
