/**
 * The client SDK (`client.ts`) against a real in-process Shark on the memory
 * adapter and a real HTTP service: authentication through the `auth` hook,
 * subscribe/message/unsubscribe with their replies, reconnects (Shark
 * restarted on the same port, a dead connection, close codes), backoff,
 * `close()`, subscriptions ended by Shark, resubscribe retries, the cap on
 * events in flight, and recovery on a history service whose history was
 * lost. Redis cases: `client_redis_test.ts`.
 *
 * The client's own waits (backoff, the open and pong timeouts, nothing
 * after `close()`) run on a fake clock (its `clock` option), checked to the
 * millisecond of test time; the reconnects through a restarted Shark run on
 * real time, with windows of seconds.
 */
import assert from "node:assert/strict";
import { type JsonValue, SharkError, type SubscribeReply } from "../client.ts";
import { AppService, Recorder, TcpProxy, testClient } from "./helpers/client_app.ts";
import { FakeClock } from "./helpers/clock.ts";
import { freePort } from "./helpers/loopback.ts";
import { slowly } from "./helpers/service.ts";
import { TestShark } from "./helpers/shark.ts";
import { delay, waitUntil } from "./helpers/wait.ts";

/** Quick, deterministic backoff: `random` = 1 makes every delay its cap. */
const FAST = { backoff: { min: 50, max: 200 }, random: () => 1 } as const;

function booksConfig(app: AppService, books: Record<string, unknown> = {}) {
  return {
    authentication: app.authentication,
    delivery: { metadata: false },
    services: {
      books: {
        extra_fields: ["author"],
        authorizer: app.url("/authorizer"),
        before_subscribe: app.url("/before_subscribe"),
        on_message: app.url("/on_message"),
        before_unsubscribe: app.url("/before_unsubscribe"),
        on_unsubscribe: app.url("/on_unsubscribe"),
        ...books,
      },
    },
  };
}

/** `on_message` answers as the message asks: `{reply}` → data, `{fail}` → error, else nothing. */
function answerMessages(app: AppService): void {
  app.answer("/on_message", ({ body }) => {
    const data = body.data as Record<string, unknown>;
    if ("fail" in data) return { status: "error", error: data.fail };
    if ("reply" in data) return { status: "ok", data: data.reply };
    return { status: "ok" };
  });
}

Deno.test("auth, subscribe, message and unsubscribe: ticket from the auth hook, ready with before_subscribe's data and the extra fields, pushes routed, unsubscribe ends it", async () => {
  await using app = new AppService();
  app.answer("/before_subscribe", { status: "ok", data: { title: "Dune" } });
  await using node = await TestShark.start(booksConfig(app));
  const contexts: string[] = [];
  await using client = testClient(node.wsUrl, {
    auth: ({ reason }) => {
      contexts.push(reason);
      return app.issue();
    },
  });
  const events = new Recorder(client);
  const messages: JsonValue[] = [];
  const book = client.subscribe("books.b1", {
    extra: { author: "herbert" },
    onMessage: (message) => messages.push(message.data),
  });
  const reply = await book.ready;
  assert.deepEqual(contexts, ["connect"]);
  assert.equal(app.bodies("/ticket")[0].ticket, app.issued[0]);
  assert.equal(reply.data && (reply.data as { title: string }).title, "Dune");
  assert.equal(reply.author, "herbert");
  assert.equal(book.state, "subscribed");
  assert.equal(client.state, "connected");
  assert.deepEqual(events.of("connected").map((event) => event.detail), [{ reconnected: false }]);
  const [subscribe] = app.bodies("/before_subscribe");
  assert.equal(subscribe.author, "herbert");
  assert.equal(subscribe.user_id, "user-0");

  await node.shark.publish({ subscription: "books.b1", data: { n: 1 } });
  await node.shark.publish({ subscription: "books.other", data: { n: 0 } });
  await waitUntil(() => messages.length === 1, 3000, "the published message");
  assert.deepEqual(messages, [{ n: 1 }]);

  await book.unsubscribe();
  assert.equal(book.state, "ended");
  assert.equal(client.subscriptions.size, 0);
  await app.waitFor("/on_unsubscribe");
  await node.shark.publish({ subscription: "books.b1", data: { n: 2 } });
  await assert.rejects(book.request({}), /not subscribed/);
  assert.deepEqual(messages, [{ n: 1 }]);
  assert.equal(events.of("error").length, 0);
});

Deno.test("message: request() resolves with on_message's data, undefined for an ok without data, rejects with its error; send() reports to onReply/onError; answers matched in order", async () => {
  await using app = new AppService();
  answerMessages(app);
  await using node = await TestShark.start(booksConfig(app));
  await using client = testClient(node.wsUrl, { auth: () => app.issue() });
  const replies: JsonValue[] = [];
  const errors: string[] = [];
  const book = client.subscribe("books.b1", {
    onReply: (data) => replies.push(data),
    onError: (error) => errors.push(error.message),
  });
  await book.ready;
  const answers = await Promise.allSettled([
    book.request({ reply: { id: 1 } }),
    book.request({}),
    book.request({ fail: "No." }),
    book.request({ reply: null }),
    book.request({ reply: "last" }),
  ]);
  assert.deepEqual(answers.map((answer) => answer.status), [
    "fulfilled",
    "fulfilled",
    "rejected",
    "fulfilled",
    "fulfilled",
  ]);
  assert.deepEqual((answers[0] as PromiseFulfilledResult<JsonValue>).value, { id: 1 });
  assert.equal((answers[1] as PromiseFulfilledResult<JsonValue>).value, undefined);
  const refusal = (answers[2] as PromiseRejectedResult).reason;
  assert.ok(refusal instanceof SharkError);
  assert.equal(refusal.message, "No.");
  assert.equal(refusal.reply?.event, "message");
  assert.equal((answers[3] as PromiseFulfilledResult<JsonValue>).value, null);
  assert.equal((answers[4] as PromiseFulfilledResult<JsonValue>).value, "last");

  book.send({});
  book.send({ fail: "Too long." });
  book.send({ reply: "r1" });
  book.send({});
  book.send({ reply: "r2" });
  await waitUntil(() => replies.length === 2 && errors.length === 1, 3000, "send() outcomes");
  assert.deepEqual(replies, ["r1", "r2"]);
  assert.deepEqual(errors, ["Too long."]);
  assert.equal(app.bodies("/on_message").length, 10);
});

Deno.test("errors: ready rejects with the error reply; a name is held once per client; unsubscribe refused by before_unsubscribe keeps the subscription", async () => {
  await using app = new AppService();
  app.answer(
    "/authorizer",
    ({ body }) =>
      body.subscription === "books.secret"
        ? { status: "error", error: "Not yours." }
        : { status: "ok" },
  );
  app.answer("/before_unsubscribe", { status: "error", error: "Finish reading first." });
  await using node = await TestShark.start(booksConfig(app));
  await using client = testClient(node.wsUrl, { auth: () => app.issue() });
  const secret = client.subscribe("books.secret");
  const error = await secret.ready.then(() => undefined, (error) => error);
  assert.ok(error instanceof SharkError);
  assert.equal(error.message, "Not yours.");
  assert.equal(error.reply?.status, "error");
  assert.equal(secret.state, "ended");
  const unknown = client.subscribe("nobooks.x");
  await assert.rejects(unknown.ready, /Invalid service\./);

  const book = client.subscribe("books.b1");
  assert.throws(() => client.subscribe("books.b1"), /already subscribed to books\.b1/);
  await book.ready;
  await assert.rejects(book.unsubscribe(), /Finish reading first\./);
  assert.equal(book.state, "subscribed");
  assert.equal(await book.request({}), undefined);
});

Deno.test("Shark stopped and started on the same port: reconnect with backoff, a fresh ticket, every subscription again with its extra fields, in order, once each, after auth", async () => {
  await using app = new AppService();
  let state = 0;
  app.answer("/before_subscribe", () => ({ status: "ok", data: { state } }));
  const config = booksConfig(app);
  await using node = await TestShark.start(config);
  const port = node.port;
  await using client = testClient(node.wsUrl, {
    auth: () => app.issue(),
    // Every connection that authenticated counts as stable (the rule: a fake-clock test below).
    backoff: { min: 100, max: 400, resetAfter: 0 },
    random: () => 1,
  });
  const events = new Recorder(client);
  const seen: { name: string; state: JsonValue; resubscribed: boolean }[] = [];
  const subscribe = (name: string, author: string) =>
    client.subscribe(name, {
      extra: { author },
      onSubscribed: (reply, resubscribed) =>
        seen.push({ name, state: (reply.data as { state: number }).state, resubscribed }),
    });
  const first = subscribe("books.b1", "herbert");
  const second = subscribe("books.b2", "le guin");
  await Promise.all([first.ready, second.ready]);

  await node.stop();
  state = 1;
  await events.wait("disconnected", 4);
  await using _restarted = await TestShark.start(config, { port });
  await events.wait("connected", 2);
  await waitUntil(() => seen.length === 4, 5000, "both subscriptions back");

  const [closed, ...refused] = events.of("disconnected").map((event) => event.detail);
  assert.equal(closed.code, 1001);
  assert.equal(closed.reconnect, true);
  // Capped exponential: the first step after a connection that stayed up, then doubling to the cap.
  assert.deepEqual(
    [closed, ...refused].slice(0, 4).map((detail) => detail.delay),
    [100, 200, 400, 400],
  );
  assert.ok(refused.every((detail) => detail.code === 1006));
  assert.deepEqual(events.of("connected").map((event) => event.detail.reconnected), [
    false,
    true,
  ]);
  assert.deepEqual(seen.slice(2), [
    { name: "books.b1", state: 1, resubscribed: true },
    { name: "books.b2", state: 1, resubscribed: true },
  ]);
  // Exactly one ticket per connection that opened, each used once; subscribes after auth.
  assert.equal(app.issued.length, 2);
  assert.deepEqual(app.bodies("/ticket").map((body) => body.ticket), app.issued);
  const paths = app.paths().filter((path) => path === "/ticket" || path === "/before_subscribe");
  assert.deepEqual(paths, [
    "/ticket",
    "/before_subscribe",
    "/before_subscribe",
    "/ticket",
    "/before_subscribe",
    "/before_subscribe",
  ]);
  const again = app.bodies("/before_subscribe").slice(2);
  assert.deepEqual(again.map((body) => [body.subscription, body.author, body.user_id]), [
    ["books.b1", "herbert", "user-1"],
    ["books.b2", "le guin", "user-1"],
  ]);
  assert.equal(events.of("error").length, 0);
  assert.equal(await first.request({}), undefined);
});

Deno.test("backoff on a fake clock: each delay is random() × min(max, min × 2ⁿ), and the next attempt comes exactly that long after", async () => {
  const clock = new FakeClock();
  let random = 0.5;
  await using client = testClient(`ws://127.0.0.1:${freePort()}/`, {
    backoff: { min: 40, max: 300 },
    random: () => random,
    clock,
  });
  const events = new Recorder(client);
  const expected = [20, 40, 80, 150, 150, 150, 300, 300];
  for (const [attempt, delay] of expected.entries()) {
    if (attempt === 6) random = 1;
    const disconnected = await events.wait("disconnected", attempt + 1);
    assert.equal(disconnected[attempt].detail.delay, delay, `attempt ${attempt}`);
    clock.tick(delay - 1);
    assert.equal(events.of("connecting").length, attempt + 1, `attempt ${attempt + 1} not yet`);
    clock.tick(1);
    assert.equal(events.of("connecting").length, attempt + 2, `attempt ${attempt + 1} now`);
  }
  assert.deepEqual(
    events.of("connecting").map((event) => event.detail.attempt),
    [0, 1, 2, 3, 4, 5, 6, 7, 8],
  );
});

Deno.test("backoff on a fake clock: a connection that stayed up resetAfter starts the next series from min, a shorter one does not", async () => {
  await using app = new AppService();
  await using node = await TestShark.start(booksConfig(app));
  await using proxy = new TcpProxy(node.port);
  const clock = new FakeClock();
  await using client = testClient(proxy.url, {
    auth: () => app.issue(),
    backoff: { min: 100, max: 10_000, resetAfter: 5000 },
    random: () => 1,
    pingInterval: 0,
    clock,
  });
  const events = new Recorder(client);
  for (const [n, [stayedUp, delay]] of [[4999, 100], [4999, 200], [5000, 100]].entries()) {
    await events.wait("connected", n + 1);
    clock.tick(stayedUp);
    proxy.cut();
    const [lost] = (await events.wait("disconnected", n + 1)).slice(n);
    assert.equal(lost.detail.code, 1006);
    assert.equal(lost.detail.delay, delay, `the delay after ${stayedUp} ms up`);
    clock.tick(delay);
  }
  await events.wait("connected", 4);
});

Deno.test("close() stops for good: no reconnect, pending ready and requests reject, the socket is closed", async () => {
  await using app = new AppService();
  app.answer("/on_message", slowly(300));
  await using node = await TestShark.start(booksConfig(app));
  const clock = new FakeClock();
  await using client = testClient(node.wsUrl, { auth: () => app.issue(), ...FAST, clock });
  const events = new Recorder(client);
  const book = client.subscribe("books.b1");
  await book.ready;
  const answer = book.request({});
  const later = client.subscribe("books.b2");
  await client.close();
  await assert.rejects(answer, /disconnected before Shark answered/);
  await assert.rejects(later.ready, /the client is closed/);
  assert.equal(client.state, "closed");
  assert.equal(book.state, "ended");
  assert.throws(() => client.subscribe("books.b3"), /closed/);
  const [closed] = events.of("disconnected");
  assert.deepEqual(closed.detail, {
    code: 1000,
    reason: "closed by the client",
    reconnect: false,
    delay: null,
  });
  assert.equal(clock.pending, 0, "no timer left");
  clock.tick(3_600_000);
  assert.equal(events.of("connecting").length, 1);
  assert.equal(app.issued.length, 1);
});

Deno.test("close() while waiting to reconnect cancels the attempt", async () => {
  const clock = new FakeClock();
  await using client = testClient(`ws://127.0.0.1:${freePort()}/`, {
    backoff: { min: 200, max: 200 },
    random: () => 1,
    clock,
  });
  const events = new Recorder(client);
  await events.wait("disconnected");
  assert.equal(clock.pending, 1, "the reconnect is due");
  await client.close();
  assert.equal(clock.pending, 0, "and cancelled");
  clock.tick(3_600_000);
  assert.equal(events.of("connecting").length, 1);
  assert.equal(client.state, "closed");
});

Deno.test("a failed re-authorization notice ends the subscription: onUnsubscribed with Shark's error, no resubscribe, not even after a reconnect", async () => {
  await using app = new AppService();
  let allowed = true;
  app.answer(
    "/authorizer",
    ({ body }) =>
      body.subscription === "books.b1" && !allowed
        ? { status: "error", error: "Access revoked." }
        : { status: "ok" },
  );
  const config = booksConfig(app, { authorization_renewal_period: 0.2 });
  await using node = await TestShark.start(config);
  await using client = testClient(node.wsUrl, { auth: () => app.issue(), ...FAST });
  const events = new Recorder(client);
  const ended: SharkError[] = [];
  const revoked = client.subscribe("books.b1", {
    extra: { author: "a" },
    onUnsubscribed: (error) => ended.push(error),
  });
  const kept = client.subscribe("books.b2");
  await Promise.all([revoked.ready, kept.ready]);
  allowed = false;
  await waitUntil(() => ended.length === 1, 3000, "the unsubscribe notice");
  assert.equal(ended[0].message, "Access revoked.");
  assert.equal(ended[0].reply?.event, "unsubscribe");
  assert.equal(ended[0].reply?.author, "a");
  assert.equal(revoked.state, "ended");
  assert.deepEqual([...client.subscriptions.keys()], ["books.b2"]);

  await node.stop();
  await using _restarted = await TestShark.start(config, { port: node.port });
  await events.wait("connected", 2);
  await waitUntil(() => app.bodies("/before_subscribe").length === 3, 3000, "books.b2 again");
  await delay(300);
  assert.deepEqual(app.bodies("/before_subscribe").map((body) => body.subscription), [
    "books.b1",
    "books.b2",
    "books.b2",
  ]);
  assert.equal(kept.state, "subscribed");
});

Deno.test("close code 1009 (a frame over max_message_bytes) is final: no reconnect, subscriptions end", async () => {
  await using app = new AppService();
  await using node = await TestShark.start({
    ...booksConfig(app),
    server: { max_message_bytes: 1024 },
  });
  const clock = new FakeClock();
  await using client = testClient(node.wsUrl, { auth: () => app.issue(), ...FAST, clock });
  const events = new Recorder(client);
  const book = client.subscribe("books.b1");
  await book.ready;
  const big = client.subscribe("books.b2", { extra: { author: "x".repeat(2000) } });
  const [closed] = await events.wait("disconnected");
  assert.equal(closed.detail.code, 1009);
  assert.equal(closed.detail.reconnect, false);
  assert.equal(closed.detail.delay, null);
  assert.equal(client.state, "closed");
  assert.equal(book.state, "ended");
  await assert.rejects(big.ready, /the client is closed/);
  assert.equal(clock.pending, 0, "no reconnect due");
  clock.tick(3_600_000);
  assert.equal(events.of("connecting").length, 1);
});

Deno.test("liveness on a fake clock: a ping every pingInterval, its rtt on the clock; nothing received within pongTimeout after one drops the connection (4000) and reconnects", async () => {
  await using app = new AppService();
  await using node = await TestShark.start(booksConfig(app));
  const clock = new FakeClock();
  await using client = testClient(node.wsUrl, {
    auth: () => app.issue(),
    pingInterval: 1000,
    pongTimeout: 300,
    ...FAST,
    clock,
  });
  const events = new Recorder(client);
  const book = client.subscribe("books.b1");
  await book.ready;
  clock.tick(1000); // the first ping
  clock.tick(7); // before its pong can arrive
  const [ping] = await events.wait("ping");
  assert.equal(ping.detail.rtt, 7, "sent at 1000 ms, answered at 1007 ms");
  // Events are answered in order: a ping behind a callback this slow gets no pong in time.
  app.answer("/on_message", slowly(1000));
  const lost = book.request({});
  clock.tick(993 + 299);
  assert.equal(events.of("disconnected").length, 0, "the second ping waits 300 ms");
  clock.tick(1);
  const [dropped] = events.of("disconnected");
  assert.deepEqual(dropped.detail, {
    code: 4000,
    reason: "no pong within 300 ms",
    reconnect: true,
    delay: 50,
  });
  await assert.rejects(lost, /disconnected before Shark answered/);
  clock.tick(50);
  await events.wait("connected", 2);
  await waitUntil(() => book.state === "subscribed", 3000, "resubscribed");
});

Deno.test("a socket not open within pongTimeout (a server that accepts and never answers the upgrade) is given up (4000) and tried again, on a fake clock", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const connection of listener) held.push(connection);
  })().catch(() => {});
  try {
    const clock = new FakeClock();
    await using client = testClient(`ws://127.0.0.1:${listener.addr.port}/`, {
      pongTimeout: 200,
      ...FAST,
      clock,
    });
    const events = new Recorder(client);
    for (const attempt of [1, 2]) {
      await events.wait("connecting", attempt);
      clock.tick(199);
      assert.equal(events.of("disconnected").length, attempt - 1, "not given up before 200 ms");
      clock.tick(1);
      const [given] = events.of("disconnected").slice(attempt - 1);
      assert.deepEqual(given.detail, {
        code: 4000,
        reason: "not open within 200 ms",
        reconnect: true,
        delay: given.detail.delay,
      });
      clock.tick(given.detail.delay!);
    }
  } finally {
    listener.close();
    await accepting;
    for (const connection of held) connection.close();
  }
});

Deno.test("at most maxPendingEvents in flight: 150 messages behind a slow on_message are all answered, in order, without a 1008", async () => {
  await using app = new AppService();
  app.answer("/on_message", async ({ body }) => {
    await delay(2);
    return { status: "ok", data: body.data };
  });
  await using node = await TestShark.start(booksConfig(app));
  await using client = testClient(node.wsUrl, { auth: () => app.issue(), maxPendingEvents: 64 });
  const events = new Recorder(client);
  const book = client.subscribe("books.b1");
  await book.ready;
  const answers = await Promise.all(
    Array.from({ length: 150 }, (_, n) => book.request(n, { timeout: 20_000 })),
  );
  assert.deepEqual(answers, Array.from({ length: 150 }, (_, n) => n));
  assert.equal(events.of("disconnected").length, 0);
});

Deno.test("a resubscribe answered Service unavailable. is tried again with backoff; other refusals end the subscription through onUnsubscribed", async () => {
  await using app = new AppService();
  let down = false;
  let state = 0;
  app.answer("/before_subscribe", ({ body }) => {
    if (down && body.subscription === "books.b1") return new Response("down", { status: 503 });
    if (down && body.subscription === "books.b2") return { status: "error", error: "Gone." };
    return { status: "ok", data: { state } };
  });
  const config = booksConfig(app);
  await using node = await TestShark.start(config);
  await using client = testClient(node.wsUrl, { auth: () => app.issue(), ...FAST });
  const errors: string[] = [];
  const ended: string[] = [];
  const states: JsonValue[] = [];
  const retried = client.subscribe("books.b1", {
    onError: (error) => errors.push(error.message),
    onSubscribed: (reply: SubscribeReply) => states.push(reply.data ?? null),
  });
  const refused = client.subscribe("books.b2", {
    onUnsubscribed: (error) => ended.push(error.message),
  });
  await Promise.all([retried.ready, refused.ready]);
  down = true;
  await node.stop();
  await using _restarted = await TestShark.start(config, { port: node.port });
  await waitUntil(() => errors.length >= 2, 5000, "two failed resubscribes");
  state = 1;
  down = false;
  await waitUntil(() => retried.state === "subscribed", 5000, "resubscribed after the retries");
  assert.ok(errors.every((error) => error === "Service unavailable."), String(errors));
  assert.deepEqual(states, [{ state: 0 }, { state: 1 }]);
  assert.deepEqual(ended, ["Gone."]);
  assert.equal(refused.state, "ended");
  assert.deepEqual([...client.subscriptions.keys()], ["books.b1"]);
});

Deno.test("recovery on the memory adapter: the position is remembered and sent as recover; a restarted Shark lost its history, so recovered is false and data is fresh state", async () => {
  await using app = new AppService();
  let state = 0;
  app.answer("/before_subscribe", () => ({ status: "ok", data: { state } }));
  const config = booksConfig(app, { history: { size: 100, ttl: 60 } });
  await using node = await TestShark.start(config);
  await using client = testClient(node.wsUrl, { auth: () => app.issue(), ...FAST });
  const replies: { reply: SubscribeReply; resubscribed: boolean }[] = [];
  const offsets: number[] = [];
  const book = client.subscribe("books.b1", {
    onSubscribed: (reply, resubscribed) => replies.push({ reply, resubscribed }),
    onMessage: (message) => offsets.push(message.offset!),
  });
  const first = await book.ready;
  assert.equal(first.offset, 0);
  assert.equal(first.recovered, undefined, "nothing to recover from on the first subscribe");
  for (let n = 1; n <= 3; n++) {
    await node.shark.publish({ subscription: "books.b1", data: { n } });
  }
  await waitUntil(() => offsets.length === 3, 3000, "three messages");
  assert.deepEqual(book.position, { offset: 3, epoch: first.epoch });

  await node.stop();
  state = 1;
  await using _restarted = await TestShark.start(config, { port: node.port });
  await waitUntil(() => replies.length === 2, 5000, "resubscribed");
  const again = replies[1];
  assert.equal(again.resubscribed, true);
  assert.equal(again.reply.recovered, false);
  assert.deepEqual(again.reply.data, { state: 1 });
  assert.notEqual(again.reply.epoch, first.epoch);
  assert.deepEqual(book.position, { offset: 0, epoch: again.reply.epoch });
});
