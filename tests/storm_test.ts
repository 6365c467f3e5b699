/**
 * A reconnect storm's rules (issue 23), on fakes and a fake clock: history
 * reads shared by the subscriptions that ask for the same one, never joined
 * once sent (SPEC section 10's no-gap rule). End to end: clients recovering
 * one topic from one position share reads and each still gets every offset
 * once. (The catch-up gate, which holds newcomers while the node is behind,
 * is `catch_up_test.ts`.)
 */
import assert from "node:assert/strict";
import { SharedReads } from "../src/delivery/shared_reads.ts";
import { MemoryPubSub } from "../mod.ts";
import { range } from "./helpers/range.ts";
import { TestShark } from "./helpers/shark.ts";

/** A read the test settles: `sent` counts the reads sent; `settle(value)` answers the oldest. */
function controlledReads() {
  const pending: PromiseWithResolvers<string>[] = [];
  return {
    get sent() {
      return pending.length;
    },
    read: () => {
      const read = Promise.withResolvers<string>();
      pending.push(read);
      return read.promise;
    },
    settle(index: number, value: string | Error) {
      if (value instanceof Error) pending[index].reject(value);
      else pending[index].resolve(value);
    },
  };
}

const settled = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("shared reads: requests before a read is sent share it; one that comes after it was sent waits for the next", async () => {
  const reads = new SharedReads<string>();
  const backend = controlledReads();
  const first = reads.read("t 5 e", backend.read);
  const during = [reads.read("t 5 e", backend.read), reads.read("t 5 e", backend.read)];
  assert.equal(backend.sent, 1, "one read in flight per key");
  backend.settle(0, "first read");
  assert.equal(await first, "first read");
  await settled();
  assert.equal(backend.sent, 2, "the requests made during the first read share a second one");
  backend.settle(1, "second read");
  assert.deepEqual(await Promise.all(during), ["second read", "second read"]);
  await settled();
  assert.equal(reads.size, 0, "nothing kept once answered");
});

Deno.test("shared reads: other keys read apart; a failed read fails its own requests only", async () => {
  const reads = new SharedReads<string>();
  const backend = controlledReads();
  const a = reads.read("a", backend.read);
  const b = reads.read("b", backend.read);
  assert.equal(backend.sent, 2);
  const later = reads.read("a", backend.read);
  backend.settle(0, new Error("redis down"));
  await assert.rejects(a, /redis down/);
  await settled();
  backend.settle(2, "a again");
  backend.settle(1, "b");
  assert.equal(await later, "a again");
  assert.equal(await b, "b");
});

Deno.test("a storm of clients recovering one topic from one position shares history reads, and each gets every offset once, in order", async () => {
  const pubsub = new MemoryPubSub();
  const history = pubsub.history;
  let reads = 0;
  const recover = history.recover.bind(history);
  history.recover = (...args) => {
    reads++;
    return recover(...args);
  };
  await using shark = await TestShark.start({
    delivery: { metadata: false },
    services: { books: { require_authentication: false, history: { size: 100, ttl: 60 } } },
  }, { pubsub });
  const first = await shark.connect();
  const { epoch } = await first.subscribe("books.1");
  await first.close();
  for (let n = 1; n <= 10; n++) await shark.publish({ subscription: "books.1", data: { n } });
  const clients = await Promise.all(range(1, 30).map(() => shark.connect()));
  const replies = await Promise.all(
    clients.map((client) =>
      client.request({ event: "subscribe", subscription: "books.1", recover: { offset: 0, epoch } })
    ),
  );
  await shark.publish({ subscription: "books.1", data: { n: 11 } });
  for (const [index, client] of clients.entries()) {
    assert.equal(replies[index].recovered, true);
    const messages = await client.take(11);
    assert.deepEqual(messages.map((message) => message.offset), range(1, 11));
  }
  assert.ok(reads < clients.length, `${reads} reads for ${clients.length} clients`);
});
