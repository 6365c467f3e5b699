/**
 * The fan-out queue's bound (`server.max_fanout_queue_bytes`): it never
 * holds more than its limit plus one payload, and takes payloads again once
 * the fan-out has caught up.
 */
import assert from "node:assert/strict";
import { Metrics } from "../mod.ts";
import { REAL_CLOCK } from "../src/clock.ts";
import { FanoutQueue } from "../src/delivery/fanout_queue.ts";
import { FAKE_EPOCH_MS, FakeClock } from "./helpers/clock.ts";

Deno.test("the fan-out queue refuses payloads once they add up to its limit, and takes them again once fanned out", async () => {
  const metrics = new Metrics();
  const fannedOut: string[] = [];
  const queue = new FanoutQueue(
    (inbound) => {
      fannedOut.push(inbound.payload);
      return 1;
    },
    metrics,
    1000,
  );
  const payload = "x".repeat(300);
  assert.deepEqual([1, 2, 3, 4, 5].map(() => queue.push("t", payload)), [
    true,
    true,
    true,
    true,
    false,
  ]);
  assert.equal(queue.full, true);
  assert.equal(metrics.queued, 4);
  assert.equal(metrics.queuedBytes, 1200, "at most the limit plus one payload");
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(fannedOut.length, 4);
  assert.equal(metrics.queuedBytes, 0);
  assert.equal(queue.full, false);
  assert.equal(queue.push("t", payload), true);
  queue.close();
  assert.equal(metrics.queued, 0);
  assert.equal(metrics.queuedBytes, 0);
});

Deno.test("a fan-out slice lasts 4 ms, or after a yield as long as the event loop took in between, up to 32 ms", async () => {
  // The fan-out's clock advances 1 ms per payload; each gap between slices
  // (the runtime writing what a slice sent) takes what `gaps` says.
  let now = 0;
  const gaps = [20, 100, 0];
  const slices: number[] = [];
  let current = 0;
  let sliceEnds = false;
  const done = Promise.withResolvers<void>();
  const queue = new FanoutQueue(
    () => {
      now += 1;
      current++;
      if (!sliceEnds) {
        sliceEnds = true;
        // Runs once the slice's task is over, before the next slice.
        queueMicrotask(() => {
          sliceEnds = false;
          slices.push(current);
          current = 0;
          now += gaps.shift() ?? 0;
          if (slices.length === 4) done.resolve();
        });
      }
      return 1000;
    },
    new Metrics(),
    1 << 20,
    { ...REAL_CLOCK, now: () => now },
  );
  for (let i = 0; i < 4 + 20 + 32 + 4; i++) queue.push("t", "x");
  await done.promise;
  assert.deepEqual(slices, [4, 20, 32, 4]);
  queue.close();
});

Deno.test("after its slice the fan-out waits for a 0 ms timer of its clock, which close() cancels; payloads of one task share one received-at time", async () => {
  // Each reading is 50 ms later: every slice is over after one payload.
  const clock = new FakeClock({ perReading: 50 });
  const metrics = new Metrics();
  const fannedOut: [string, number][] = [];
  const queue = new FanoutQueue(
    (inbound) => {
      fannedOut.push([inbound.payload, inbound.receivedAt]);
      return 100;
    },
    metrics,
    1 << 20,
    clock,
  );
  for (const payload of ["a", "b", "c"]) queue.push("t", payload);
  await Promise.resolve();
  assert.deepEqual(fannedOut, [["a", FAKE_EPOCH_MS]]);
  assert.equal(clock.pending, 1, "waiting for its turn");
  assert.equal(metrics.queued, 2);
  clock.tick(0);
  assert.deepEqual(fannedOut.map(([payload]) => payload), ["a", "b"]);
  assert.deepEqual(fannedOut[1], ["b", FAKE_EPOCH_MS], "received in the same task as a");
  queue.close();
  assert.equal(clock.pending, 0, "close() cancels the turn");
  assert.equal(metrics.queued, 0);
  clock.tick(1000);
  assert.equal(fannedOut.length, 2);
});
