/**
 * The catch-up gate (`server.catch_up_sessions`, issue 23): while the
 * runtime's I/O is behind, new connections wait, unread and never refused,
 * while a window of sessions is busy. Its rules on a fake clock and a
 * pressure the test sets; end to end, a connection held until a busy
 * session's `auth` is answered, on both transports; the CLI's probe of the
 * runtime's I/O.
 */
import assert from "node:assert/strict";
import {
  CatchUpGate,
  NO_PRESSURE,
  type Pressure,
  RECHECK_MS,
  SETTLE_MS,
} from "../src/session/catch_up_gate.ts";
import { FakeClock } from "./helpers/clock.ts";
import { IoProbe } from "../cli/io_probe.ts";
import { TestShark } from "./helpers/shark.ts";
import { held, TestService } from "./helpers/service.ts";
import { TestClient } from "./helpers/client.ts";
import { waitUntil } from "./helpers/wait.ts";

/** A reading of the runtime's I/O that the test sets. */
class SetPressure implements Pressure {
  behindNow = true;
  closed = 0;
  behind(): boolean {
    return this.behindNow;
  }
  close(): void {
    this.closed++;
  }
}

/** A gate on a fake clock; `waits` counts the connections waiting, as the metric does. */
function gate(limit: number, behind = true, maxWaitMs = 10_000) {
  const clock = new FakeClock();
  const pressure = new SetPressure();
  pressure.behindNow = behind;
  const counts = { waiting: 0, waited: 0 };
  const catchUp = new CatchUpGate<object>({
    limit,
    maxWaitMs,
    pressure,
    clock,
    onWait: (change) => {
      counts.waiting += change;
      if (change > 0) counts.waited++;
    },
  });
  return { clock, pressure, gate: catchUp, counts };
}

/** Lets a connection in at once (asserts it did not wait) as a session with its first event being handled. */
function openBusy(catchUp: CatchUpGate<object>): object {
  assert.equal(catchUp.enter(), undefined, "went in at once");
  const session = {};
  catchUp.opened(session);
  catchUp.started(session);
  return session;
}

/** Whether `promise` has settled (after the microtasks queued so far). */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(() => done = true);
  await Promise.resolve();
  await Promise.resolve();
  return done;
}

Deno.test("catch-up gate: without a reading of the runtime's I/O it holds nobody and counts nothing", () => {
  const clock = new FakeClock();
  const open = new CatchUpGate<object>({ limit: 1, maxWaitMs: 1000, pressure: NO_PRESSURE, clock });
  for (let i = 0; i < 100; i++) {
    assert.equal(open.enter(), undefined);
    const session = {};
    open.opened(session);
    open.started(session);
  }
  assert.equal(open.busy, 0);
  assert.equal(clock.pending, 0, "no timer");
});

Deno.test("catch-up gate: under pressure, from `limit` busy sessions a new connection waits until one is done", async () => {
  const { gate: catchUp, counts } = gate(2);
  const first = openBusy(catchUp);
  openBusy(catchUp);
  assert.equal(catchUp.busy, 2);
  const third = catchUp.enter();
  assert.ok(third, "the third waits");
  assert.equal(catchUp.waiting, 1);
  assert.deepEqual(counts, { waiting: 1, waited: 1 });
  assert.equal(await settled(third), false);
  // A fourth waits behind it, even if room appeared in between (first come, first served).
  const fourth = catchUp.enter()!;
  catchUp.finished(first);
  assert.equal(await settled(third), true, "the first one done lets the oldest waiting in");
  assert.equal(await settled(fourth), false);
  assert.deepEqual(counts, { waiting: 1, waited: 2 });
  catchUp.close();
});

Deno.test("catch-up gate: a connection waits at most maxWaitMs, then goes in although the node is still behind", async () => {
  const { clock, gate: catchUp } = gate(1, true, 300);
  openBusy(catchUp);
  const waiting = catchUp.enter()!;
  clock.tick(290);
  assert.equal(await settled(waiting), false);
  clock.tick(RECHECK_MS * 3);
  assert.equal(await settled(waiting), true);
  catchUp.close();
});

Deno.test("catch-up gate: a steady load does not wait while I/O keeps up: the window grows ahead of it, never past twice the sessions busy", () => {
  const { clock, pressure, gate: catchUp } = gate(8, false);
  // Twenty sessions busy, I/O keeping up: each one goes in, the window
  // growing by limit/8 per RECHECK_MS (never past twice the sessions busy).
  for (let i = 0; i < 20; i++) {
    clock.tick(RECHECK_MS);
    openBusy(catchUp);
  }
  assert.equal(catchUp.busy, 20);
  assert.ok(catchUp.window >= 20 && catchUp.window <= 40, `window ${catchUp.window}`);
  // Behind: the window halves (from the sessions busy) each RECHECK_MS, never below the limit.
  pressure.behindNow = true;
  clock.tick(RECHECK_MS);
  const waiting = catchUp.enter();
  assert.ok(waiting, "behind with 20 busy: a new connection waits");
  assert.equal(catchUp.window, 10);
  clock.tick(RECHECK_MS);
  assert.equal(catchUp.window, 8, "never below catch_up_sessions");
  catchUp.close();
});

Deno.test("catch-up gate: once I/O keeps up again, a backlog goes in at the window's pace, newcomers behind it", async () => {
  const { clock, pressure, gate: catchUp } = gate(4);
  for (let i = 0; i < 4; i++) openBusy(catchUp);
  const waiting = [catchUp.enter()!, catchUp.enter()!, catchUp.enter()!];
  pressure.behindNow = false;
  const newcomer = catchUp.enter();
  assert.ok(newcomer, "a newcomer queues behind the ones waiting");
  const inside = async () =>
    (await Promise.all([...waiting, newcomer].map(settled))).filter(Boolean).length;
  clock.tick(RECHECK_MS);
  assert.equal(await inside(), 1, "the window grew by one: one goes in");
  clock.tick(RECHECK_MS);
  assert.equal(await inside(), 2);
  clock.tick(RECHECK_MS * 2);
  assert.equal(await inside(), 4, "the newcomer last");
  catchUp.close();
});

Deno.test("catch-up gate: a new session that sends nothing stops counting after SETTLE_MS, one handling events does not; a closed one at once", async () => {
  const { clock, gate: catchUp } = gate(2);
  assert.equal(catchUp.enter(), undefined);
  const silent = {};
  catchUp.opened(silent);
  const closing = openBusy(catchUp);
  const waiting = catchUp.enter()!;
  catchUp.closed(closing);
  assert.equal(await settled(waiting), true, "a closed session frees its place");
  const working = {};
  catchUp.opened(working);
  catchUp.started(working);
  assert.equal(catchUp.busy, 2);
  const next = catchUp.enter()!;
  clock.tick(SETTLE_MS + RECHECK_MS);
  assert.equal(await settled(next), true, "the silent session settled");
  assert.equal(catchUp.busy, 2, "the one handling its event still counts, and the one let in");
  catchUp.close();
});

Deno.test("catch-up gate: a connection let in that is no session gives its place back", async () => {
  const { gate: catchUp } = gate(1);
  assert.equal(catchUp.enter(), undefined);
  const waiting = catchUp.enter()!;
  catchUp.opened(undefined);
  assert.equal(await settled(waiting), true);
  catchUp.close();
});

Deno.test("catch-up gate: closing lets everyone waiting in, holds nobody after, and closes the reading", async () => {
  const { clock, pressure, gate: catchUp, counts } = gate(1);
  openBusy(catchUp);
  const waiting = [catchUp.enter()!, catchUp.enter()!];
  catchUp.close();
  assert.deepEqual(await Promise.all(waiting.map(settled)), [true, true]);
  assert.equal(catchUp.enter(), undefined);
  assert.equal(pressure.closed, 1);
  assert.equal(counts.waiting, 0);
  assert.equal(clock.pending, 0, "no timer left");
});

Deno.test("a connection arriving while catch_up_sessions sessions are busy and I/O is behind is held until one is done, then served", async () => {
  const auth = held({ status: "ok", user_id: 1 });
  await using service = new TestService({ "/auth": auth.answer });
  const pressure = new SetPressure();
  await using shark = await TestShark.start({
    server: { catch_up_sessions: 1 },
    authentication: { ticket: { validation_url: service.url("/auth") } },
  }, { pressure });
  const busy = await shark.connect();
  busy.send({ event: "auth", ticket: "t1" });
  await waitUntil(() => service.calls.length === 1, 5000, "the auth callback");
  // The second connection's upgrade is not answered while the first session is busy.
  let opened = false;
  const second = TestClient.connect(shark.wsUrl).then((client) => {
    opened = true;
    return client;
  });
  await waitUntil(
    () => shark.shark.metrics.prometheus().includes("shark_catch_up_waiting 1"),
    5000,
    "the second connection waiting",
  );
  assert.equal(opened, false);
  auth.release();
  assert.equal((await busy.next()).status, "ok");
  const client = await second;
  assert.ok(opened);
  await client.pingPong("served");
  await client.close();
  const metrics = shark.shark.metrics.prometheus();
  assert.match(metrics, /shark_catch_up_waiting 0/);
  assert.match(metrics, /shark_catch_up_waited_total 1/);
});

Deno.test("with catch_up_sessions null nobody waits, whatever the reading says", async () => {
  const pressure = new SetPressure();
  await using shark = await TestShark.start({
    server: { catch_up_sessions: null },
    services: { open: { require_authentication: false } },
  }, { pressure });
  const clients = await Promise.all([shark.connect(), shark.connect(), shark.connect()]);
  for (const client of clients) await client.pingPong("no wait");
  assert.match(shark.shark.metrics.prometheus(), /shark_catch_up_waited_total 0/);
});

Deno.test("the I/O probe: behind while its byte waits behind a busy event loop, not once reads are served at once", async () => {
  const probe = await IoProbe.start();
  try {
    assert.equal(probe.behind(), false, "no reading yet");
    assert.ok(probe.inFlight, "asking sent a byte");
    // The event loop blocked for 40 ms: the byte cannot have been read.
    const until = performance.now() + 40;
    while (performance.now() < until) { /* busy */ }
    assert.equal(probe.behind(), true, "a byte in flight for 40 ms");
    await waitUntil(() => !probe.inFlight, 5000, "the byte read");
    assert.equal(probe.behind(), true, "the last byte took over 10 ms");
    // Idle: the next bytes are read within a few milliseconds.
    await waitUntil(
      async () => {
        await new Promise((resolve) => setTimeout(resolve, 6));
        return !probe.behind();
      },
      5000,
      "a reading under 10 ms",
    );
  } finally {
    probe.close();
  }
});
