/**
 * The benchmark tools' own arithmetic: `deno task bench --only NAME` keeps
 * one server of a scenario, and `bench/ab.ts` pairs each round of one
 * checkout with the round of the other that followed it.
 */
import assert from "node:assert/strict";
import { onlyServer, type Target } from "../bench/_scenarios.ts";
import { median, pairedRatios } from "../bench/ab.ts";

const target = (server: string): Target => ({
  server,
  cpus: "0",
  command: () => [],
  spec: {},
});

Deno.test("--only keeps the targets of the server it names, in order", () => {
  const list = [target("baseline"), target("bun"), target("shark")];
  assert.deepEqual(onlyServer(list, "shark").map((t) => t.server), ["shark"]);
  assert.deepEqual(onlyServer(list, undefined).map((t) => t.server), ["baseline", "bun", "shark"]);
  assert.deepEqual(onlyServer(list, "nginx"), []);
});

Deno.test("ab: each B round is divided by the A round before it, not medians by medians", () => {
  // Noisy rounds where B always costs 10 % more than the A round next to it.
  const a = [300, 200, 400, 250, 350];
  const b = [330, 220, 440, 275, 385];
  const paired = pairedRatios(a, b);
  assert.deepEqual(paired.ratios.map((ratio) => ratio.toFixed(3)), Array(5).fill("1.100"));
  assert.equal(paired.median.toFixed(3), "1.100");
  assert.equal(paired.mean.toFixed(3), "1.100");
  // A missing last B round is left out, not divided by undefined.
  assert.equal(pairedRatios(a, b.slice(0, 3)).ratios.length, 3);
});

Deno.test("ab: the median of an even count is the upper middle value", () => {
  assert.equal(median([4, 1, 3, 2]), 3);
  assert.equal(median([5]), 5);
});
