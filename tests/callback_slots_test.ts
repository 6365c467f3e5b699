/**
 * The limit on service callbacks in flight to one origin (`http.max_concurrent`,
 * SPEC sections 2 and 8), on `Slots` itself: at most the limit, first come
 * first served, a cancelled wait leaves the line at once, and no slot is
 * ever lost. No socket, no timer.
 */
import assert from "node:assert/strict";
import { Slots } from "../src/callbacks/callback_slots.ts";
import { Metrics } from "../src/metrics/metrics.ts";

/** Lets every settled promise's reactions run. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("slots: at most the limit are taken; a released one goes to the longest waiter, and the line is counted", async () => {
  const metrics = new Metrics();
  const slots = new Slots(2, metrics);
  assert.equal(slots.tryTake(), true);
  assert.equal(slots.tryTake(), true);
  assert.equal(slots.tryTake(), false);
  const granted: string[] = [];
  const never = new AbortController().signal;
  for (const name of ["a", "b", "c"]) {
    slots.wait(never).then((ok) => ok && granted.push(name));
  }
  assert.equal(metrics.callbacksQueued, 3);
  slots.release();
  await settle();
  assert.deepEqual(granted, ["a"]);
  assert.equal(metrics.callbacksQueued, 2);
  slots.release();
  slots.release();
  await settle();
  assert.deepEqual(granted, ["a", "b", "c"]);
  assert.equal(metrics.callbacksQueued, 0);
});

Deno.test("slots: nobody passes a waiter: a free slot is not taken while others wait for one", async () => {
  const slots = new Slots(1, new Metrics());
  assert.equal(slots.tryTake(), true);
  const first = slots.wait(new AbortController().signal);
  slots.release();
  assert.equal(slots.tryTake(), false, "the released slot is the waiter's");
  assert.equal(await first, true);
});

Deno.test("slots: a wait whose signal aborts leaves the line at once, is never granted, and loses no slot", async () => {
  const metrics = new Metrics();
  const slots = new Slots(1, metrics);
  assert.equal(slots.tryTake(), true);
  const cancel = new AbortController();
  const cancelled = slots.wait(cancel.signal);
  const next = slots.wait(new AbortController().signal);
  cancel.abort();
  assert.equal(await cancelled, false);
  assert.equal(metrics.callbacksQueued, 1);
  slots.release();
  assert.equal(await next, true, "the slot skips the cancelled wait");
  slots.release();
  assert.equal(slots.tryTake(), true, "the slot is free again");
  assert.equal(slots.tryTake(), false);
  const aborted = new AbortController();
  aborted.abort();
  assert.equal(await slots.wait(aborted.signal), false, "an aborted signal never waits");
  assert.equal(metrics.callbacksQueued, 0);
});

Deno.test("slots: a long line is served in order and every slot comes back", async () => {
  const metrics = new Metrics();
  const slots = new Slots(3, metrics);
  const order: number[] = [];
  const waits: Promise<void>[] = [];
  for (let i = 0; i < 3; i++) assert.ok(slots.tryTake());
  for (let i = 0; i < 10_000; i++) {
    const cancel = new AbortController();
    waits.push(
      slots.wait(cancel.signal).then((ok) => {
        if (ok) {
          order.push(i);
          slots.release();
        }
      }),
    );
    if (i % 3 === 0) cancel.abort();
  }
  for (let i = 0; i < 3; i++) slots.release();
  await Promise.all(waits);
  assert.deepEqual(order, [...Array(10_000).keys()].filter((i) => i % 3 !== 0));
  assert.equal(metrics.callbacksQueued, 0);
  for (let i = 0; i < 3; i++) assert.ok(slots.tryTake());
  assert.equal(slots.tryTake(), false);
});

Deno.test("slots: closing sends every waiter away at once, and every later one; a wait may have no signal", async () => {
  const metrics = new Metrics();
  const slots = new Slots(1, metrics);
  assert.equal(slots.tryTake(), true);
  const waits = [slots.wait(), slots.wait(new AbortController().signal), slots.wait()];
  assert.equal(metrics.callbacksQueued, 3);
  slots.close();
  assert.deepEqual(await Promise.all(waits), [false, false, false]);
  assert.equal(metrics.callbacksQueued, 0);
  assert.equal(await slots.wait(), false, "a closed line takes nobody");
});
