/**
 * History and recovery (SPEC section 10) end to end on the memory adapter:
 * the `history` key of a service and its refusal where no history can be
 * kept, positions in messages and subscribe replies, recovery with its
 * ordering and no-duplicate guarantees under a concurrent publisher, the
 * cases that cannot recover, `Invalid recover position.`, the section 4
 * rules on replayed messages, metrics, and SocketShark clients seeing no
 * difference. The same against Redis: `redis_history_test.ts`.
 */
import assert from "node:assert/strict";
import { BroadcastChannelPubSub, loadConfig, Shark } from "../mod.ts";
import type { TestClient } from "./helpers/client.ts";
import { runMain } from "./helpers/process.ts";
import { range } from "./helpers/range.ts";
import { TestService } from "./helpers/service.ts";
import { TestShark } from "./helpers/shark.ts";
import { problems } from "./helpers/config.ts";

const HISTORY = { size: 100, ttl: 60 };
const NO_METADATA = { delivery: { metadata: false } } as const;

function config(books: Record<string, unknown> = {}, more: Record<string, unknown> = {}) {
  return {
    ...NO_METADATA,
    services: {
      books: { require_authentication: false, history: HISTORY, ...books },
      plain: { require_authentication: false },
    },
    ...more,
  };
}

async function subscribe(shark: TestShark, request: Record<string, unknown>) {
  const client = await shark.connect();
  const reply = await client.request({ event: "subscribe", ...request });
  return { client, reply };
}

async function publishN(shark: TestShark, topic: string, from: number, to: number) {
  for (let n = from; n <= to; n++) await shark.publish({ subscription: topic, data: { n } });
}

/** Offsets of the next `count` messages, checking they are messages of `epoch`. */
async function offsets(client: TestClient, count: number, epoch: unknown): Promise<number[]> {
  const messages = await client.take(count);
  for (const message of messages) {
    assert.equal(message.event, "message", JSON.stringify(message));
    assert.equal(message.epoch, epoch);
  }
  return messages.map((message) => message.offset as number);
}

Deno.test("config: history defaults to null; size 1–10000 and ttl > 0, anything else names the key", () => {
  assert.equal(loadConfig({ services: { books: {} } }).services.books.history, null);
  const history = { size: 1, ttl: 0.5 };
  assert.deepEqual(
    loadConfig({ services: { books: { history } } }).services.books.history,
    history,
  );
  assert.deepEqual(
    loadConfig({ services: { books: { history: { size: 10000, ttl: 300 } } } }).services.books
      .history,
    { size: 10000, ttl: 300 },
  );
  const bad = [
    [{ size: 0, ttl: 1 }, "size"],
    [{ size: 10001, ttl: 1 }, "size"],
    [{ size: 1.5, ttl: 1 }, "size"],
    [{ ttl: 1 }, "size"],
    [{ size: 1, ttl: 0 }, "ttl"],
    [{ size: 1 }, "ttl"],
    [{ size: 1, ttl: 1, keep: true }, "keep"],
  ] as const;
  for (const [value, key] of bad) {
    const [problem] = problems({ services: { books: { history: value } } });
    assert.match(problem, new RegExp(`^services\\.books\\.history\\.${key}: `), problem);
  }
});

Deno.test("history on a service with the broadcast_channel adapter is rejected at start: exit 2 naming the key", async () => {
  const config = {
    pubsub: { adapter: "broadcast_channel" },
    services: { books: { history: { size: 10, ttl: 60 } }, news: {} },
  };
  const started = await runMain([], { SHARK_CONFIG: JSON.stringify(config) });
  assert.equal(started.code, 2);
  assert.match(
    started.stderr,
    /services\.books\.history: is not available with the broadcast_channel adapter/,
  );
  assert.doesNotMatch(started.stderr, /services\.news/);
  const overridden = await runMain(["--adapter", "broadcast_channel"], {
    SHARK_CONFIG: JSON.stringify({ services: config.services }),
  });
  assert.equal(overridden.code, 2);
  assert.match(overridden.stderr, /services\.books\.history: /);
});

Deno.test("an adapter that keeps no history refuses to start a service with history, naming the key", async () => {
  const pubsub = new BroadcastChannelPubSub({ name: `history-test-${crypto.randomUUID()}` });
  const shark = new Shark(config(), { pubsub });
  await assert.rejects(
    shark.started,
    /services\.books\.history: the broadcast_channel adapter keeps no history/,
  );
});

Deno.test("messages of a history service carry offset and epoch next to data, gapless from 1, also with metadata off", async () => {
  {
    await using shark = await TestShark.start(config());
    const { client, reply } = await subscribe(shark, { subscription: "books.1" });
    const epoch = reply.epoch;
    await publishN(shark, "books.1", 1, 3);
    const messages = await client.take(3);
    assert.deepEqual(
      messages,
      [1, 2, 3].map((n) => ({
        event: "message",
        subscription: "books.1",
        data: { n },
        offset: n,
        epoch,
      })),
    );
    await client.close();
  }
  {
    await using shark = await TestShark.start(config({}, { delivery: { metadata: true } }));
    const { client } = await subscribe(shark, { subscription: "books.1" });
    await shark.publish({ subscription: "books.1", data: 1 });
    const message = await client.next();
    assert.equal(message.offset, 1);
    assert.equal(typeof message.epoch, "string");
    assert.equal(typeof message.sent_at, "string");
    await client.close();
  }
});

Deno.test("a history service's subscribe reply carries the topic's position: offset 0 and a fresh epoch for a topic without history", async () => {
  {
    await using shark = await TestShark.start(config());
    const first = await subscribe(shark, { subscription: "books.1" });
    assert.deepEqual(Object.keys(first.reply), [
      "event",
      "status",
      "subscription",
      "offset",
      "epoch",
    ]);
    assert.equal(first.reply.offset, 0);
    assert.equal(typeof first.reply.epoch, "string");
    assert.ok((first.reply.epoch as string).length > 0);
    await publishN(shark, "books.1", 1, 2);
    const second = await subscribe(shark, { subscription: "books.1" });
    assert.deepEqual(second.reply, {
      event: "subscribe",
      status: "ok",
      subscription: "books.1",
      offset: 2,
      epoch: first.reply.epoch,
    });
    const other = await subscribe(shark, { subscription: "books.2" });
    assert.notEqual(other.reply.epoch, first.reply.epoch);
    for (const { client } of [first, second, other]) await client.close();
  }
});

Deno.test("recovery: a client that saw offset N gets exactly N+1..top in order after `recovered: true`, then live messages", async () => {
  {
    await using shark = await TestShark.start(config());
    const seen = await subscribe(shark, { subscription: "books.1" });
    await publishN(shark, "books.1", 1, 4);
    const epoch = seen.reply.epoch;
    assert.deepEqual(await offsets(seen.client, 4, epoch), [1, 2, 3, 4]);
    await seen.client.close();
    await publishN(shark, "books.1", 5, 10);
    const back = await subscribe(shark, {
      subscription: "books.1",
      recover: { offset: 4, epoch },
    });
    assert.deepEqual(back.reply, {
      event: "subscribe",
      status: "ok",
      subscription: "books.1",
      offset: 10,
      epoch,
      recovered: true,
    });
    const replayed = await back.client.take(6);
    assert.deepEqual(replayed.map((message) => message.data), range(5, 10).map((n) => ({ n })));
    assert.deepEqual(replayed.map((message) => message.offset), range(5, 10));
    await publishN(shark, "books.1", 11, 11);
    assert.deepEqual(await offsets(back.client, 1, epoch), [11]);
    await back.client.silence(100);
    await back.client.close();
  }
});

Deno.test("recovery under a concurrent publisher: each client gets every offset after its own exactly once, in order", async () => {
  const service = new TestService({
    "/before_subscribe": async () => {
      await new Promise((resolve) => setTimeout(resolve, 30));
      return { status: "ok" };
    },
  });
  try {
    {
      await using shark = await TestShark.start(
        config({
          before_subscribe: service.url("/before_subscribe"),
          history: { size: 1000, ttl: 60 },
        }),
      );
      const first = await subscribe(shark, { subscription: "books.1" });
      const epoch = first.reply.epoch;
      await first.client.close();
      await publishN(shark, "books.1", 1, 20);
      let publishing = true;
      let published = 20;
      const publisher = (async () => {
        while (publishing) {
          await shark.publish({ subscription: "books.1", data: { n: ++published } });
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
      })();
      const from = [0, 5, 13, 19, 20];
      const clients = await Promise.all(from.map(async (offset) => {
        const { client, reply } = await subscribe(shark, {
          subscription: "books.1",
          recover: { offset, epoch },
        });
        assert.equal(reply.recovered, true, JSON.stringify(reply));
        return client;
      }));
      await new Promise((resolve) => setTimeout(resolve, 100));
      publishing = false;
      await publisher;
      for (const [index, client] of clients.entries()) {
        const expected = range(from[index] + 1, published);
        assert.deepEqual(await offsets(client, expected.length, epoch), expected);
        await client.silence(50);
        await client.close();
      }
    }
  } finally {
    await service.close();
  }
});

Deno.test("no recovery from another epoch or from further back than the history: `recovered: false`, nothing replayed, live messages flow", async () => {
  {
    await using shark = await TestShark.start(config({ history: { size: 5, ttl: 60 } }));
    const first = await subscribe(shark, { subscription: "books.1" });
    const epoch = first.reply.epoch;
    await first.client.close();
    await publishN(shark, "books.1", 1, 12);
    const clients = [];
    for (
      const recover of [{ offset: 6, epoch }, { offset: 12, epoch: "stale" }, { offset: 13, epoch }]
    ) {
      const { client, reply } = await subscribe(shark, { subscription: "books.1", recover });
      assert.deepEqual(reply, {
        event: "subscribe",
        status: "ok",
        subscription: "books.1",
        offset: 12,
        epoch,
        recovered: false,
      }, JSON.stringify(recover));
      clients.push(client);
    }
    await shark.publish({ subscription: "books.1", data: "live" });
    for (const client of clients) {
      const message = await client.next();
      assert.deepEqual([message.data, message.offset], ["live", 13]);
      await client.silence(50);
      await client.close();
    }
    const within = await subscribe(shark, {
      subscription: "books.1",
      recover: { offset: 10, epoch },
    });
    assert.equal(within.reply.recovered, true);
    assert.deepEqual(await offsets(within.client, 3, epoch), range(11, 13));
    await within.client.close();
  }
});

Deno.test("a history whose ttl passed is gone: `recovered: false`, a new epoch at offset 0", async () => {
  {
    await using shark = await TestShark.start(config({ history: { size: 10, ttl: 0.2 } }));
    const first = await subscribe(shark, { subscription: "books.1" });
    await publishN(shark, "books.1", 1, 3);
    await first.client.take(3);
    await first.client.close();
    await new Promise((resolve) => setTimeout(resolve, 400));
    const { client, reply } = await subscribe(shark, {
      subscription: "books.1",
      recover: { offset: 3, epoch: first.reply.epoch },
    });
    assert.equal(reply.recovered, false);
    assert.equal(reply.offset, 0);
    assert.notEqual(reply.epoch, first.reply.epoch);
    await client.silence(50);
    await client.close();
  }
});

Deno.test("`Invalid recover position.` unless an object with a non-negative integer offset and a string epoch, checked after check 2", async () => {
  {
    await using shark = await TestShark.start(
      config({ require_authentication: true, extra_fields: ["tag"] }),
    );
    const client = await shark.connect();
    for (
      const recover of [
        null,
        "4",
        4,
        [],
        {},
        { offset: 4 },
        { epoch: "e" },
        { offset: -1, epoch: "e" },
        {
          offset: 1.5,
          epoch: "e",
        },
        { offset: "4", epoch: "e" },
        { offset: 4, epoch: 7 },
      ]
    ) {
      assert.deepEqual(
        await client.request({ event: "subscribe", subscription: "books.1", tag: "t", recover }),
        {
          event: "subscribe",
          status: "error",
          error: "Invalid recover position.",
          tag: "t",
          subscription: "books.1",
        },
        JSON.stringify(recover),
      );
    }
    const bad = { offset: -1, epoch: "e" };
    assert.equal(
      (await client.request({ event: "subscribe", subscription: "nope.1", recover: bad })).error,
      "Invalid service.",
    );
    assert.equal(
      (await client.request({ event: "subscribe", subscription: "books", recover: bad })).error,
      "Invalid subscription format.",
    );
    assert.equal(
      (await client.request({
        event: "subscribe",
        subscription: "books.1",
        recover: { offset: 0, epoch: "" },
      }))
        .error,
      "Authentication required.",
    );
    await client.close();
  }
});

Deno.test("`recover` on a service without history is ignored, valid or not: no recovery keys in the reply", async () => {
  {
    await using shark = await TestShark.start(config());
    for (const recover of [{ offset: 3, epoch: "e" }, "nonsense"]) {
      const { client, reply } = await subscribe(shark, { subscription: "plain.1", recover });
      assert.deepEqual(reply, { event: "subscribe", status: "ok", subscription: "plain.1" });
      await client.close();
    }
  }
});

Deno.test("replayed messages pass the section 4 rules as live ones do: filter fields and order seeded by before_subscribe", async () => {
  const service = new TestService({
    "/before_subscribe": { status: "ok", options: { order: 3 } },
  });
  try {
    {
      await using shark = await TestShark.start(
        config({
          extra_fields: ["author_id"],
          filter_fields: ["author_id"],
          before_subscribe: service.url("/before_subscribe"),
        }),
      );
      const first = await subscribe(shark, { subscription: "books.1", author_id: "a" });
      const epoch = first.reply.epoch;
      await first.client.close();
      const envelopes = [
        { author_id: "a", options: { order: 2 } },
        { author_id: "b", options: { order: 4 } },
        { author_id: "a", options: { order: 5 } },
        { author_id: "a", options: { order: 4 } },
        { author_id: "a" },
      ];
      for (const [index, fields] of envelopes.entries()) {
        await shark.publish({ subscription: "books.1", data: index + 1, ...fields });
      }
      const { client, reply } = await subscribe(shark, {
        subscription: "books.1",
        author_id: "a",
        recover: { offset: 0, epoch },
      });
      assert.equal(reply.recovered, true);
      const messages = await client.take(2);
      assert.deepEqual(messages.map((message) => [message.data, message.offset]), [[3, 3], [
        5,
        5,
      ]]);
      await client.silence(100);
      await client.close();
    }
  } finally {
    await service.close();
  }
});

Deno.test("metrics: recoveries by outcome, envelopes replayed, envelopes published with a position", async () => {
  {
    await using shark = await TestShark.start(config());
    const first = await subscribe(shark, { subscription: "books.1" });
    const epoch = first.reply.epoch;
    await first.client.close();
    await publishN(shark, "books.1", 1, 4);
    await shark.publish({ subscription: "plain.1", data: 0 });
    const recovered = await subscribe(shark, {
      subscription: "books.1",
      recover: { offset: 1, epoch },
    });
    await recovered.client.take(3);
    const lost = await subscribe(shark, {
      subscription: "books.1",
      recover: { offset: 1, epoch: "x" },
    });
    const snapshot = shark.shark.metrics.snapshot();
    assert.equal(snapshot.history_published, 4);
    assert.equal(snapshot.published, 5);
    assert.equal(snapshot.history_replayed, 3);
    assert.equal(snapshot["recoveries.recovered"], 1);
    assert.equal(snapshot["recoveries.not_recovered"], 1);
    const text = shark.shark.metrics.prometheus();
    assert.match(text, /^shark_recoveries_total\{outcome="recovered"\} 1$/m);
    assert.match(text, /^shark_history_replayed_total 3$/m);
    assert.match(text, /^shark_history_published_total 4$/m);
    for (const { client } of [recovered, lost]) await client.close();
  }
});

Deno.test("SocketShark clients see no difference on a service without history: replies and messages carry no new keys", async () => {
  {
    await using shark = await TestShark.start(config());
    const { client, reply } = await subscribe(shark, { subscription: "plain.1" });
    assert.deepEqual(reply, { event: "subscribe", status: "ok", subscription: "plain.1" });
    await shark.publish({ subscription: "plain.1", data: { n: 1 }, offset: 9, epoch: "e" });
    assert.deepEqual(await client.next(), {
      event: "message",
      subscription: "plain.1",
      data: { n: 1 },
    });
    await client.close();
  }
});
