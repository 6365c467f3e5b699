/**
 * The pacer (src/session/pacer.ts): work run in slices of the
 * event loop, in call order; rules on a fake time and fake loop turns, and
 * once on the real loop (a timer gets its turn during a long run of work).
 */
import assert from "node:assert/strict";
import { Pacer, type PacerTiming } from "../src/session/pacer.ts";

/** Fake time and loop turns: `turn()` runs what waits for the loop to turn. */
class FakeLoop implements PacerTiming {
  time = 0;
  #turns: (() => void)[] = [];
  now(): number {
    return this.time;
  }
  afterTurn(task: () => void): void {
    this.#turns.push(task);
  }
  get pendingTurns(): number {
    return this.#turns.length;
  }
  /** Runs the tasks waiting for a turn, then lets their microtasks run. */
  async turn(): Promise<void> {
    const tasks = this.#turns.splice(0);
    for (const task of tasks) task();
    await settle();
  }
}

/** Lets every queued microtask (and those they queue) run. */
const settle = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

Deno.test("pacer: quiet, turns resolve in microtasks and cost one timer per slice", async () => {
  const loop = new FakeLoop();
  const pacer = new Pacer({ timing: loop, sliceMs: 5 });
  const order: number[] = [];
  for (let i = 0; i < 3; i++) pacer.turn().then(() => order.push(i));
  await settle();
  // Without the loop turning (the fake turn has not run).
  assert.deepEqual(order, [0, 1, 2]);
  assert.equal(loop.pendingTurns, 1);
  assert.equal(pacer.waiting, 0);
  await loop.turn();
  // The loop turned: the next turn starts a new slice.
  await pacer.turn();
  assert.equal(loop.pendingTurns, 1);
});

Deno.test("pacer: past the slice, work waits for the loop to turn, in call order", async () => {
  const loop = new FakeLoop();
  const pacer = new Pacer({ timing: loop, sliceMs: 5 });
  const done: number[] = [];
  await pacer.turn();
  loop.time = 6; // the first piece of work took 6 ms
  const all = Array.from({ length: 4 }, (_, i) =>
    pacer.turn().then(() => {
      done.push(i);
      loop.time += 2; // each piece takes 2 ms
    }));
  await settle();
  assert.deepEqual(done, [], "nothing runs before the loop turns");
  assert.equal(pacer.waiting, 4);
  await loop.turn();
  // A new slice at 6 ms: 0 runs (6→8), 1 runs (8→10), 2 runs (10→12); at 12 ms the slice is spent.
  assert.deepEqual(done, [0, 1, 2]);
  assert.equal(pacer.waiting, 1);
  assert.equal(loop.pendingTurns, 1);
  await loop.turn();
  assert.deepEqual(done, [0, 1, 2, 3]);
  await Promise.all(all);
});

Deno.test("pacer: a turn taken while others wait waits behind them", async () => {
  const loop = new FakeLoop();
  const pacer = new Pacer({ timing: loop, sliceMs: 5 });
  const done: string[] = [];
  await pacer.turn();
  loop.time = 10;
  pacer.turn().then(() => done.push("first"));
  loop.time = 10; // the slice is long spent; a young slice would not matter either: someone waits
  pacer.turn().then(() => done.push("second"));
  await loop.turn();
  assert.deepEqual(done, ["first", "second"]);
});

Deno.test("pacer: close lets everything waiting go on and admits the rest at once", async () => {
  const loop = new FakeLoop();
  const pacer = new Pacer({ timing: loop, sliceMs: 5 });
  await pacer.turn();
  loop.time = 10;
  const waiting = [pacer.turn(), pacer.turn()];
  pacer.close();
  await Promise.all(waiting);
  assert.equal(pacer.waiting, 0);
  await pacer.turn();
});

Deno.test("pacer on the real loop: a timer runs between slices of a long run of work", async () => {
  const pacer = new Pacer({ sliceMs: 5 });
  const busy = (ms: number) => {
    const end = performance.now() + ms;
    while (performance.now() < end) { /* work */ }
  };
  let finished = 0;
  let finishedWhenTimerRan = -1;
  setTimeout(() => finishedWhenTimerRan = finished, 0);
  await Promise.all(Array.from({ length: 60 }, async () => {
    await pacer.turn();
    busy(1);
    finished++;
  }));
  assert.equal(finished, 60);
  // Without the pacer all 60 ms of work would run before the timer.
  assert.ok(
    finishedWhenTimerRan >= 1 && finishedWhenTimerRan < 30,
    `the timer ran after ${finishedWhenTimerRan} of 60`,
  );
});
