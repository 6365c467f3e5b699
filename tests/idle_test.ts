/**
 * `server.idle_timeout`: the sweep that closes connections still idle at
 * their deadline, proven on fake connections and fake time.
 */
import assert from "node:assert/strict";
import { type IdleCandidate, IdleSweep } from "../src/session/idle.ts";
import type { CloseReason } from "../src/protocol.ts";
import { FakeClock } from "./helpers/clock.ts";

class FakeConnection implements IdleCandidate {
  authenticated = false;
  readonly subscriptions = new Set<string>();
  closed = false;
  closedWith: CloseReason | undefined;

  close(reason: CloseReason): void {
    this.closed = true;
    this.closedWith = reason;
  }
}

Deno.test("idle_timeout: at its deadline a connection that has not authenticated and holds no subscription is closed with 4008", () => {
  const clock = new FakeClock();
  const sweep = new IdleSweep(10, clock);
  const idle = new FakeConnection();
  const authenticated = new FakeConnection();
  const subscribed = new FakeConnection();
  const gone = new FakeConnection();
  for (const connection of [idle, authenticated, subscribed, gone]) sweep.watch(connection);
  clock.tick(9_999);
  assert.equal(idle.closed, false);
  authenticated.authenticated = true;
  subscribed.subscriptions.add("books.1");
  gone.closed = true;
  clock.tick(1);
  assert.equal(idle.closedWith?.code, 4008);
  assert.equal(idle.closedWith?.reconnect, false);
  assert.equal(authenticated.closed, false);
  assert.equal(subscribed.closed, false);
  assert.equal(gone.closedWith, undefined);
  assert.equal(clock.pending, 0, "no timer left once nothing is watched");
});

Deno.test("idle_timeout: each connection gets its own deadline from when it opened, with one timer for all", () => {
  const clock = new FakeClock();
  const sweep = new IdleSweep(1, clock);
  const connections = Array.from({ length: 5 }, () => new FakeConnection());
  for (const connection of connections) {
    sweep.watch(connection);
    assert.equal(clock.pending, 1);
    clock.tick(300);
  }
  // Opened at 0, 300, 600, 900, 1200: at 1500 the first two are due.
  assert.deepEqual(connections.map((c) => c.closed), [true, true, false, false, false]);
  clock.tick(700);
  assert.deepEqual(connections.map((c) => c.closed), [true, true, true, true, true]);
  sweep.watch(new FakeConnection());
  sweep.close();
  assert.equal(clock.pending, 0, "close() leaves no timer");
});
