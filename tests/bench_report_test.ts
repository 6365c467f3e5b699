/**
 * The benchmark report's ratios against the raw Bun baseline (`deno task
 * bench subrate storm`): computed from the `bun` rows of the same run, and
 * `n/a` (not a failure) where no Bun could be found and those rows are absent.
 */
import assert from "node:assert/strict";
import { ratios, ratioTable } from "../bench/_report.ts";
import type { Result } from "../bench/loadgen.ts";

const connect = (server: string, connsPerS: number, cpuUs: number): Result => ({
  scenario: "storm",
  variant: "connect",
  server,
  conns_per_s: connsPerS,
  server_cpu_us_per_op: cpuUs,
});

const named = (list: ReturnType<typeof ratios>, name: string) => {
  const ratio = list.find((ratio) => ratio.name === name);
  assert.ok(ratio, `no ratio named ${name}`);
  return ratio;
};

Deno.test("storm connect conn/s is compared with raw Bun's of the same run", () => {
  const list = ratios([
    connect("baseline", 2000, 140),
    connect("bun", 3000, 45),
    connect("shark", 4200, 120),
  ]);
  assert.deepEqual(named(list, "storm connect conn/s (÷ raw Bun)"), {
    name: "storm connect conn/s (÷ raw Bun)",
    value: 1.4,
    target: ">= 1",
    pass: true,
  });
  assert.equal(named(list, "storm connect server CPU/conn (÷ raw Bun)").value, 2.67);
  // The raw Deno ratio still compares with the baseline, not with Bun.
  assert.equal(named(list, "storm connect conn/s").value, 2.1);
  const slower = ratios([connect("bun", 3000, 45), connect("shark", 2400, 120)]);
  assert.equal(named(slower, "storm connect conn/s (÷ raw Bun)").pass, false);
  assert.match(
    ratioTable(slower),
    /\| storm connect conn\/s \(÷ raw Bun\) \| 0\.8 \| >= 1 \| NO \|/,
  );
});

Deno.test("without a Bun in the run its ratios are n/a, not failures", () => {
  const list = ratios([connect("baseline", 2000, 140), connect("shark", 4200, 120)]);
  const bun = list.filter((ratio) => ratio.name.includes("raw Bun"));
  assert.ok(bun.length >= 4);
  for (const ratio of bun) assert.deepEqual([ratio.value, ratio.pass], [null, null]);
  assert.match(
    ratioTable(list),
    /\| storm connect conn\/s \(÷ raw Bun\) \| n\/a \| >= 1 \| n\/a \|/,
  );
});
