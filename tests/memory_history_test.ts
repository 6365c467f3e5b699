/**
 * The memory adapter's history (SPEC section 10, memory) on a fake clock,
 * and the position helpers every adapter shares.
 */
import assert from "node:assert/strict";
import { MemoryHistory } from "../adapters/memory_history.ts";
import { MemoryPubSub } from "../mod.ts";
import {
  type HistoryOptions,
  positionOf,
  recoverPosition,
  withPosition,
} from "../src/pubsub/history.ts";

const OPTIONS: HistoryOptions = { size: 5, ttl: 10 };

/** A MemoryHistory on a clock the test moves, with epochs e1, e2, ... */
function fakeHistory() {
  const clock = { now: 0 };
  const delivered: [string, string][] = [];
  let epochs = 0;
  const history = new MemoryHistory((topic, payload) => delivered.push([topic, payload]), {
    now: () => clock.now,
    newEpoch: () => `e${++epochs}`,
  });
  const publish = (topic: string, data: unknown, options = OPTIONS) =>
    history.publish(topic, JSON.stringify({ subscription: topic, data }), options);
  return { history, clock, delivered, publish };
}

Deno.test("memory history: gapless offsets from 1 in one epoch, each delivered at once with its position as the last keys", async () => {
  const { delivered, publish } = fakeHistory();
  for (let n = 1; n <= 3; n++) {
    const position = await publish("books.b1", { n });
    assert.deepEqual(position, { offset: n, epoch: "e1" });
    assert.deepEqual(delivered.at(-1), [
      "books.b1",
      `{"subscription":"books.b1","data":{"n":${n}},"offset":${n},"epoch":"e1"}`,
    ]);
  }
  assert.deepEqual(await publish("books.b2", 1), { offset: 1, epoch: "e2" });
});

Deno.test("memory history: the last `size` envelopes are kept; recovery from further back is refused", async () => {
  const { history, publish } = fakeHistory();
  for (let n = 1; n <= 12; n++) await publish("books.b1", n);
  const within = await history.recover("books.b1", { offset: 7, epoch: "e1" }, OPTIONS);
  assert.deepEqual(within.position, { offset: 12, epoch: "e1" });
  assert.deepEqual(within.payloads!.map((payload) => JSON.parse(payload).data), [8, 9, 10, 11, 12]);
  const beyond = await history.recover("books.b1", { offset: 6, epoch: "e1" }, OPTIONS);
  assert.deepEqual(beyond, { position: { offset: 12, epoch: "e1" }, payloads: undefined });
});

Deno.test("memory history: recovery refuses another epoch and an offset never reached; the current offset recovers nothing", async () => {
  const { history, publish } = fakeHistory();
  await publish("books.b1", 1);
  const current = { offset: 1, epoch: "e1" };
  for (const from of [{ offset: 0, epoch: "other" }, { offset: 2, epoch: "e1" }]) {
    assert.deepEqual(await history.recover("books.b1", from, OPTIONS), {
      position: current,
      payloads: undefined,
    });
  }
  assert.deepEqual(await history.recover("books.b1", current, OPTIONS), {
    position: current,
    payloads: [],
  });
});

Deno.test("memory history: position creates the epoch at offset 0, and the first publish continues it", async () => {
  const { history, publish } = fakeHistory();
  assert.deepEqual(await history.position("books.b1", OPTIONS), { offset: 0, epoch: "e1" });
  assert.deepEqual(await history.position("books.b1", OPTIONS), { offset: 0, epoch: "e1" });
  assert.deepEqual(await publish("books.b1", 1), { offset: 1, epoch: "e1" });
});

Deno.test("memory history: ttl counts from the last publish; once it passed, a new epoch at offset 0 and the old position is not recoverable", async () => {
  const { history, clock, publish } = fakeHistory();
  await publish("books.b1", 1);
  clock.now = 8_000;
  await publish("books.b1", 2);
  clock.now = 17_999;
  assert.deepEqual(await history.position("books.b1", OPTIONS), { offset: 2, epoch: "e1" });
  clock.now = 18_000;
  assert.deepEqual(await history.recover("books.b1", { offset: 1, epoch: "e1" }, OPTIONS), {
    position: { offset: 0, epoch: "e2" },
    payloads: undefined,
  });
});

Deno.test("memory history: reading the position does not extend the ttl", async () => {
  const { history, clock } = fakeHistory();
  await history.position("books.b1", OPTIONS);
  clock.now = 9_000;
  await history.position("books.b1", OPTIONS);
  clock.now = 10_000;
  assert.deepEqual(await history.position("books.b1", OPTIONS), { offset: 0, epoch: "e2" });
});

Deno.test("memory history: expired topics are forgotten at the next call on any topic, each after its own ttl", async () => {
  const { history, clock, publish } = fakeHistory();
  for (let n = 0; n < 1000; n++) await publish(`books.short${n}`, n);
  await publish("books.long", 1, { size: 5, ttl: 100 });
  assert.equal(history.topics, 1001);
  clock.now = 10_000;
  await publish("books.other", 1);
  assert.equal(history.topics, 2);
  clock.now = 99_999;
  assert.equal(history.topics, 1);
  clock.now = 100_000;
  assert.equal(history.topics, 0);
});

Deno.test("MemoryPubSub: a history publish reaches the subscribers of this process with its position", async () => {
  const pubsub = new MemoryPubSub();
  const received: string[] = [];
  await pubsub.start({ message: (_topic, payload) => received.push(payload), health() {} });
  await pubsub.subscribe("books.b1");
  const { epoch } = await pubsub.history.publish(
    "books.b1",
    '{"subscription":"books.b1","data":1}',
    OPTIONS,
  );
  await pubsub.history.publish("books.b2", '{"subscription":"books.b2","data":2}', OPTIONS);
  assert.deepEqual(received.map((payload) => JSON.parse(payload)), [
    { subscription: "books.b1", data: 1, offset: 1, epoch },
  ]);
  await pubsub.close();
});

Deno.test("withPosition appends offset and epoch as the last keys, so they win over a publisher's own", () => {
  const payload = withPosition('{"subscription":"a.b","data":1,"offset":"x"} ', {
    offset: 7,
    epoch: 'q"z',
  });
  assert.deepEqual(JSON.parse(payload), { subscription: "a.b", data: 1, offset: 7, epoch: 'q"z' });
});

Deno.test("positionOf: a positive integer offset and a non-empty string epoch, else no position", () => {
  assert.deepEqual(positionOf({ offset: 3, epoch: "e" }), { offset: 3, epoch: "e" });
  for (
    const bad of [
      {},
      { offset: 3 },
      { epoch: "e" },
      { offset: 0, epoch: "e" },
      {
        offset: 1.5,
        epoch: "e",
      },
      { offset: "3", epoch: "e" },
      { offset: 3, epoch: "" },
      { offset: 3, epoch: 4 },
    ]
  ) {
    assert.equal(positionOf(bad), undefined, JSON.stringify(bad));
  }
});

Deno.test("recoverPosition: an object with a non-negative integer offset and a string epoch", () => {
  assert.deepEqual(recoverPosition({ offset: 0, epoch: "" }), { offset: 0, epoch: "" });
  assert.deepEqual(recoverPosition({ offset: 9, epoch: "e", more: 1 }), { offset: 9, epoch: "e" });
  for (
    const bad of [
      null,
      [],
      "x",
      3,
      {},
      { offset: -1, epoch: "e" },
      { offset: 1.5, epoch: "e" },
      {
        offset: "1",
        epoch: "e",
      },
      { offset: 1 },
      { offset: 1, epoch: null },
    ]
  ) {
    assert.equal(recoverPosition(bad), undefined, JSON.stringify(bad));
  }
});
