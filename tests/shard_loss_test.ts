/**
 * SPEC section 14 "Losing a shard", the engine's side, on an in-process
 * adapter that reports `lost` and `resubscribed` as the Redis Cluster
 * adapter does: sessions holding a lost topic without history close with
 * 1012, the others stay open; a history topic subscribed again is caught up
 * from the last offset delivered, each envelope once, in order; where that
 * is impossible its sessions close with 1012. (The real cluster:
 * `redis_cluster_test.ts`.)
 */
import assert from "node:assert/strict";
import { MemoryPubSub } from "../adapters/memory.ts";
import type { PubSubListener } from "../mod.ts";
import { TestShark } from "./helpers/shark.ts";

/** A memory adapter whose listener the test holds, and that can miss payloads as a lost shard does. */
class ShardedMemory extends MemoryPubSub {
  listener: PubSubListener | undefined;
  missing = false;

  override start(listener: PubSubListener): Promise<void> {
    this.listener = listener;
    return super.start({
      message: (topic, payload) => this.missing || listener.message(topic, payload),
      health: (healthy, reason) => listener.health(healthy, reason),
    });
  }
}

const CONFIG = {
  services: {
    books: { require_authentication: false },
    feed: { require_authentication: false, history: { size: 3, ttl: 60 } },
  },
};

function envelope(subscription: string, data: unknown) {
  return { subscription, data };
}

Deno.test("a lost shard closes with 1012 the sessions holding one of its topics without history, and only those", async () => {
  const pubsub = new ShardedMemory();
  await using shark = await TestShark.start(CONFIG, { pubsub });
  const both = await shark.connect();
  await both.subscribe("books.1");
  await both.subscribe("feed.1");
  const elsewhere = await shark.subscriber("books.2");
  const historyOnly = await shark.subscriber("feed.1");
  pubsub.listener!.lost!(["books.1", "feed.1"], "shard 127.0.0.1:7000 lost");
  assert.equal((await both.closed).code, 1012);
  await shark.publish(envelope("books.2", "still"));
  assert.equal((await elsewhere.next()).data, "still");
  await shark.publish(envelope("feed.1", "history"));
  assert.equal((await historyOnly.next()).data, "history");
});

Deno.test("a history topic subscribed again is caught up from the last offset delivered: each missed envelope once, in order, then live ones", async () => {
  const pubsub = new ShardedMemory();
  await using shark = await TestShark.start(CONFIG, { pubsub });
  const client = await shark.subscriber("feed.1");
  await shark.publish(envelope("feed.1", 1));
  assert.equal((await client.next()).offset, 1);
  pubsub.missing = true;
  await shark.publish(envelope("feed.1", 2));
  await shark.publish(envelope("feed.1", 3));
  pubsub.missing = false;
  pubsub.listener!.resubscribed!(["feed.1"]);
  const caughtUp = await client.take(2);
  assert.deepEqual(caughtUp.map((message) => [message.offset, message.data]), [[2, 2], [3, 3]]);
  pubsub.listener!.resubscribed!(["feed.1"]);
  await shark.publish(envelope("feed.1", 4));
  assert.deepEqual((await client.next()).offset, 4);
  await client.silence(100);
});

Deno.test("a history topic that cannot be caught up (offsets no longer kept) closes its sessions with 1012", async () => {
  const pubsub = new ShardedMemory();
  await using shark = await TestShark.start(CONFIG, { pubsub });
  const client = await shark.subscriber("feed.1");
  const other = await shark.subscriber("books.1");
  await shark.publish(envelope("feed.1", 1));
  await client.next();
  pubsub.missing = true;
  for (let n = 2; n <= 6; n++) await shark.publish(envelope("feed.1", n));
  pubsub.missing = false;
  pubsub.listener!.resubscribed!(["feed.1"]);
  assert.equal((await client.closed).code, 1012);
  await shark.publish(envelope("books.1", "open"));
  assert.equal((await other.next()).data, "open");
});
