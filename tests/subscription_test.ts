/**
 * SPEC section 4, the delivery rules of one subscription (filter fields,
 * order, throttle) and the messages held while it is being confirmed, proven
 * on `Subscription` itself with a fake session and fake time: no socket, no
 * real timer, no waiting.
 */
import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import { loadConfig, Metrics } from "../mod.ts";
import type { Clock } from "../src/clock.ts";
import type { SharkConfigInput } from "../src/config/config.ts";
import { Delivery, messageFrameStart } from "../src/delivery/envelope.ts";
import { MAX_HELD_MESSAGES, type Subscriber, Subscription } from "../src/delivery/subscription.ts";
import type { JsonObject } from "../src/json.ts";
import { FakeClock } from "./helpers/clock.ts";
import { presencePayload } from "../src/presence/presence_payload.ts";
import { presenceNotice } from "../src/presence/presence_notice.ts";

const TOPIC = "books.1";
const FRAME_START = messageFrameStart(TOPIC);

/** A session that records what it is sent, and when. */
class FakeSession implements Subscriber {
  readonly log = getLogger(["shark", "test"]);
  readonly authInfo: JsonObject;
  readonly client = "client-of-the-fake-session";
  readonly sent: { frame: JsonObject; at: number }[] = [];
  /** Runs after each frame sent, as a session's slow-consumer close would. */
  afterDeliver = () => {};
  readonly #clock: Clock;

  constructor(clock: Clock, authInfo: JsonObject) {
    this.#clock = clock;
    this.authInfo = authInfo;
  }

  deliver(frame: string): boolean {
    this.sent.push({ frame: JSON.parse(frame), at: this.#clock.now() });
    this.afterDeliver();
    return true;
  }

  notify(frame: string): boolean {
    this.sent.push({ frame: JSON.parse(frame), at: this.#clock.now() });
    return true;
  }

  /** The `data` of every message sent so far. */
  get data(): unknown[] {
    return this.sent.map(({ frame }) => frame.data);
  }
}

interface Setup {
  /** The service's configuration (`services.books`). */
  service?: NonNullable<SharkConfigInput["services"]>[string];
  extra?: JsonObject;
  authInfo?: JsonObject;
  /** Whether the subscription is still being confirmed (messages held). */
  holding?: boolean;
  /** `delivery.max_keys_per_subscription`. */
  maxKeys?: number;
}

function setUp(
  { service = {}, extra = {}, authInfo = {}, holding = false, maxKeys }: Setup = {},
) {
  const clock = new FakeClock();
  const metrics = new Metrics();
  const session = new FakeSession(clock, authInfo);
  const config = loadConfig({
    services: { books: { require_authentication: false, ...service } },
    delivery: { max_keys_per_subscription: maxKeys },
  });
  const subscription = new Subscription(session, TOPIC, config.services.books, extra, {
    metrics,
    maxKeys: config.delivery.max_keys_per_subscription,
    clock,
  });
  if (!holding) subscription.release();
  /** Offers a published message: `data`, its `options` and top-level fields. */
  const publish = (data: unknown, options?: JsonObject, fields: JsonObject = {}) =>
    subscription.offer(
      new Delivery(FRAME_START, { subscription: TOPIC, data, options, ...fields }, undefined),
    );
  const dropped = (reason: string) => metrics.snapshot()[`dropped.${reason}`] ?? 0;
  const limited = (limit: string) => metrics.snapshot()[`limited.${limit}`] ?? 0;
  return { clock, session, subscription, publish, dropped, limited };
}

Deno.test("filter fields: an extra field must equal the subscription's value, any other the session's auth info", async (t) => {
  const service = { extra_fields: ["shelf"], filter_fields: ["shelf", "user_id", "role"] };

  await t.step("a filter field that is an extra field is compared with the extra value", () => {
    // The auth info's "shelf" is not what counts: the extra field is.
    const { session, publish, dropped } = setUp({
      service,
      extra: { shelf: "a" },
      authInfo: { shelf: "b" },
    });
    publish("shelf a", {}, { shelf: "a" });
    publish("shelf b", {}, { shelf: "b" });
    assert.deepEqual(session.data, ["shelf a"]);
    assert.equal(session.sent[0].frame.shelf, "a", "the extra field is echoed");
    assert.equal(dropped("filter"), 1);
  });

  await t.step("any other filter field is compared with the session's auth info", () => {
    const { session, publish, dropped } = setUp({ service, authInfo: { user_id: "u1" } });
    publish("for u1", {}, { user_id: "u1" });
    publish("for u2", {}, { user_id: "u2" });
    publish("for u1 by value", {}, { user_id: "u1", role: null });
    assert.deepEqual(session.data, ["for u1", "for u1 by value"]);
    assert.equal(dropped("filter"), 1);
  });

  await t.step("a filter field absent from the envelope does not filter", () => {
    const { session, publish } = setUp({ service, extra: { shelf: "a" } });
    publish("for everyone");
    assert.deepEqual(session.data, ["for everyone"]);
  });

  await t.step("a filter field the session does not have matches only null", () => {
    const { session, publish, dropped } = setUp({ service, authInfo: { user_id: "u1" } });
    publish("admins only", {}, { role: "admin" });
    publish("no role needed", {}, { role: null });
    assert.deepEqual(session.data, ["no role needed"]);
    assert.equal(dropped("filter"), 1);
  });
});

Deno.test("order: a message at or below the highest order seen for its order_key is dropped", async (t) => {
  await t.step("each order_key keeps its own highest order", () => {
    const { session, publish, dropped } = setUp();
    publish("a1", { order: 1, order_key: "a" });
    publish("a2", { order: 2, order_key: "a" });
    publish("a2 again", { order: 2, order_key: "a" });
    publish("b1", { order: 1, order_key: "b" });
    publish("a1 late", { order: 1, order_key: "a" });
    publish("a3", { order: 3, order_key: "a" });
    assert.deepEqual(session.data, ["a1", "a2", "b1", "a3"]);
    assert.equal(dropped("order"), 2);
  });

  await t.step("an absent order_key is one default bucket of its own", () => {
    const { session, publish } = setUp();
    publish("default 5", { order: 5 });
    publish("keyed 1", { order: 1, order_key: "k" });
    publish("default 4", { order: 4 });
    publish("default 6", { order: 6, order_key: null });
    assert.deepEqual(session.data, ["default 5", "keyed 1", "default 6"]);
  });

  await t.step("a numeric string is an order; a non-numeric order is ignored", () => {
    const { session, publish, dropped } = setUp();
    publish("7", { order: "7" });
    publish("soon", { order: "soon" });
    publish("6", { order: 6 });
    publish("no order", {});
    assert.deepEqual(session.data, ["7", "soon", "no order"]);
    assert.equal(dropped("order"), 1);
  });

  await t.step("before_subscribe's options.order seeds the state", () => {
    const { session, subscription, publish } = setUp({ holding: true });
    subscription.seedOrder({ order: 10 });
    subscription.seedOrder({ order: 3, order_key: "k" });
    subscription.seedOrder({ order: "later" });
    subscription.seedOrder("not options");
    subscription.release();
    publish("10", { order: 10 });
    publish("11", { order: 11 });
    publish("k3", { order: 3, order_key: "k" });
    publish("k4", { order: 4, order_key: "k" });
    assert.deepEqual(session.data, ["11", "k4"]);
  });
});

Deno.test("throttle: the first at once, then one per period, and the last always arrives", async (t) => {
  await t.step("within the period a message replaces the pending one, which is counted", () => {
    const { clock, session, publish, dropped } = setUp();
    publish("first", { throttle: 1 });
    assert.deepEqual(session.data, ["first"], "the first goes out at once");
    clock.tick(100);
    publish("second", { throttle: 1 });
    clock.tick(100);
    publish("third", { throttle: 1 });
    assert.equal(dropped("throttle_replaced"), 1);
    clock.tick(799);
    assert.deepEqual(session.data, ["first"]);
    clock.tick(1);
    assert.deepEqual(session.data, ["first", "third"]);
    assert.equal(session.sent[1].at, 1000, "sent when the period since the last send ends");
  });

  await t.step("a steady stream yields one message per period and then the last", () => {
    const { clock, session, publish } = setUp();
    for (let i = 0; i <= 25; i++) {
      publish(i, { throttle: "1" });
      clock.tick(100);
    }
    clock.tick(1000);
    assert.deepEqual(session.data, [0, 9, 19, 25]);
    assert.deepEqual(session.sent.map(({ at }) => at), [0, 1000, 2000, 3000]);
  });

  await t.step("after a quiet period the next message goes out at once", () => {
    const { clock, session, publish } = setUp();
    publish("first", { throttle: 0.5 });
    clock.tick(600);
    publish("second", { throttle: 0.5 });
    assert.deepEqual(session.data, ["first", "second"]);
    assert.equal(clock.pending, 0);
  });

  await t.step("each throttle_key is throttled on its own", () => {
    const { clock, session, publish } = setUp();
    for (const n of [1, 2]) {
      for (const key of ["a", "b"]) publish(`${key}${n}`, { throttle: 1, throttle_key: key });
    }
    publish("unthrottled");
    assert.deepEqual(session.data, ["a1", "b1", "unthrottled"]);
    clock.tick(1000);
    assert.deepEqual(session.data, ["a1", "b1", "unthrottled", "a2", "b2"]);
  });

  await t.step(
    "a period past the timers' limit (~24.8 days) is capped there, never fired at once",
    () => {
      const { clock, session, publish } = setUp();
      const day = 24 * 3600 * 1000;
      publish("first", { throttle: 30 * 24 * 3600 });
      publish("held", { throttle: 30 * 24 * 3600 });
      clock.tick(day);
      assert.deepEqual(session.data, ["first"], "still held after a day");
      clock.tick(2 ** 31 - 1 - day);
      assert.deepEqual(session.data, ["first", "held"], "released at the cap");
    },
  );

  await t.step("a stopped subscription sends no pending message and leaves no timer", () => {
    const { clock, session, subscription, publish } = setUp();
    publish("first", { throttle: 1 });
    publish("pending", { throttle: 1 });
    subscription.stop();
    assert.equal(clock.pending, 0);
    clock.tick(2000);
    assert.deepEqual(session.data, ["first"]);
  });
});

Deno.test("delivery.max_keys_per_subscription: beyond it the least recently updated order or throttle key is forgotten, counted", async (t) => {
  await t.step("a forgotten order_key starts over: a lower order is delivered again", () => {
    const { session, publish, limited } = setUp({ maxKeys: 2 });
    publish("a5", { order: 5, order_key: "a" });
    publish("b5", { order: 5, order_key: "b" });
    publish("c1", { order: 1, order_key: "c" });
    publish("a1", { order: 1, order_key: "a" });
    assert.deepEqual(session.data, ["a5", "b5", "c1", "a1"], "a was forgotten for c");
    assert.equal(limited("order_keys"), 2, "then b for a");
    publish("c0", { order: 0, order_key: "c" });
    assert.deepEqual(session.data.at(-1), "a1", "c is still remembered");
  });

  await t.step("updating a key makes it the most recent: the other one is forgotten first", () => {
    const { session, publish } = setUp({ maxKeys: 2 });
    publish("a1", { order: 1, order_key: "a" });
    publish("b1", { order: 1, order_key: "b" });
    publish("a2", { order: 2, order_key: "a" });
    publish("c1", { order: 1, order_key: "c" });
    publish("a0", { order: 0, order_key: "a" });
    publish("b0", { order: 0, order_key: "b" });
    assert.deepEqual(session.data, ["a1", "b1", "a2", "c1", "b0"]);
  });

  await t.step(
    "a forgotten throttle_key sends its pending message at once and leaves no timer",
    () => {
      const { clock, session, publish, limited } = setUp({ maxKeys: 1 });
      publish("x1", { throttle: 1, throttle_key: "x" });
      clock.tick(100);
      publish("x2", { throttle: 1, throttle_key: "x" });
      assert.equal(clock.pending, 1);
      publish("y1", { throttle: 1, throttle_key: "y" });
      assert.deepEqual(session.data, ["x1", "x2", "y1"], "the last of x still arrives");
      assert.equal(clock.pending, 0);
      assert.equal(limited("throttle_keys"), 1);
      publish("y2", { throttle: 1, throttle_key: "y" });
      clock.tick(1000);
      assert.deepEqual(session.data, ["x1", "x2", "y1", "y2"], "y is throttled as before");
    },
  );

  await t.step("a flood of distinct keys keeps at most the limit of each", () => {
    const { session, publish, limited } = setUp({ maxKeys: 100 });
    for (let i = 0; i < 10_000; i++) {
      publish(i, { order: 1, order_key: `o${i}`, throttle: 60, throttle_key: `t${i}` });
    }
    assert.equal(session.data.length, 10_000);
    assert.equal(limited("order_keys"), 9_900);
    assert.equal(limited("throttle_keys"), 9_900);
  });
});

Deno.test("held messages: held until release, then delivered through the same rules; overflow is counted", async (t) => {
  await t.step("nothing is delivered before release; then everything held, in order", () => {
    const { session, subscription, publish } = setUp({ holding: true });
    publish(1);
    publish(2);
    assert.deepEqual(session.data, []);
    subscription.release();
    assert.deepEqual(session.data, [1, 2]);
    publish(3);
    assert.deepEqual(session.data, [1, 2, 3], "after release messages flow directly");
  });

  await t.step("held messages pass filter, order and throttle like any other", () => {
    const { clock, session, subscription, publish, dropped } = setUp({
      holding: true,
      service: { filter_fields: ["user_id"] },
      authInfo: { user_id: "u1" },
    });
    publish("not for u1", {}, { user_id: "u2" });
    publish("order 1", { order: 1 });
    publish("order 2", { order: 2 });
    publish("throttled 1", { throttle: 1 });
    publish("throttled 2", { throttle: 1 });
    subscription.seedOrder({ order: 1 });
    subscription.release();
    assert.deepEqual(session.data, ["order 2", "throttled 1"]);
    assert.equal(dropped("filter"), 1);
    assert.equal(dropped("order"), 1);
    clock.tick(1000);
    assert.deepEqual(session.data, ["order 2", "throttled 1", "throttled 2"]);
  });

  await t.step(`beyond ${MAX_HELD_MESSAGES} held messages the rest are dropped and counted`, () => {
    const { session, subscription, publish, dropped } = setUp({ holding: true });
    for (let i = 0; i < MAX_HELD_MESSAGES + 3; i++) publish(i);
    assert.equal(dropped("held_overflow"), 3);
    subscription.release();
    assert.equal(session.sent.length, MAX_HELD_MESSAGES);
    assert.equal(session.data.at(-1), MAX_HELD_MESSAGES - 1);
  });

  await t.step("a subscription stopped while holding delivers nothing", () => {
    const { session, subscription, publish } = setUp({ holding: true });
    publish(1);
    subscription.stop();
    subscription.release();
    assert.deepEqual(session.data, []);
  });

  await t.step("a subscription that ends while its held messages go out sends no more", () => {
    const { session, subscription, publish } = setUp({ holding: true });
    publish(1);
    publish(2);
    session.afterDeliver = () => subscription.stop();
    subscription.release();
    assert.deepEqual(session.data, [1]);
  });
});

Deno.test("a task set with after() runs after its seconds, unless the subscription stopped", () => {
  const { clock, subscription } = setUp();
  const ran: string[] = [];
  subscription.after(5, () => ran.push("first"));
  subscription.after(10, () => ran.push("second"));
  clock.tick(4999);
  assert.deepEqual(ran, []);
  clock.tick(1);
  assert.deepEqual(ran, ["first"]);
  subscription.stop();
  assert.equal(clock.pending, 0);
  clock.tick(10_000);
  assert.deepEqual(ran, ["first"]);
});

/** A message of a history service at `offset` in `epoch`. */
function positioned(data: unknown, offset: number, epoch = "e"): Delivery {
  return new Delivery(FRAME_START, { subscription: TOPIC, data, offset, epoch }, undefined, {
    offset,
    epoch,
  });
}

Deno.test("recovery: replayed messages go first, then held ones; any held or late one already replayed is skipped until the first later one", () => {
  const { session, subscription } = setUp({ holding: true });
  subscription.offer(positioned("held 3", 3));
  subscription.offer(new Delivery(FRAME_START, { subscription: TOPIC, data: "plain" }, undefined));
  subscription.release({
    deliveries: [
      positioned("replayed 2", 2),
      positioned("replayed 3", 3),
      positioned("replayed 4", 4),
    ],
    upTo: { offset: 4, epoch: "e" },
  });
  subscription.offer(positioned("late 4", 4));
  subscription.offer(positioned("live 5", 5));
  subscription.offer(positioned("live 6", 6));
  assert.deepEqual(session.data, [
    "replayed 2",
    "replayed 3",
    "replayed 4",
    "plain",
    "live 5",
    "live 6",
  ]);
  assert.deepEqual(session.sent.map(({ frame }) => frame.offset), [2, 3, 4, undefined, 5, 6]);
});

Deno.test("recovery: a message of another epoch (the history was lost meanwhile) is not taken for a replayed one", () => {
  const { session, subscription } = setUp({ holding: true });
  subscription.release({
    deliveries: [positioned("replayed 4", 4)],
    upTo: { offset: 4, epoch: "e" },
  });
  subscription.offer(positioned("new epoch 1", 1, "f"));
  assert.deepEqual(session.data, ["replayed 4", "new epoch 1"]);
});

Deno.test("without a recovery every held message is sent, whatever its position", () => {
  const { session, subscription } = setUp({ holding: true });
  subscription.offer(positioned("held 3", 3));
  subscription.offer(positioned("held 4", 4));
  subscription.release();
  subscription.offer(positioned("live 5", 5));
  assert.deepEqual(session.data, ["held 3", "held 4", "live 5"]);
});

Deno.test("a positioned message's frame has offset and epoch right after data, before the extra fields", () => {
  const { session, subscription } = setUp({ extra: { tag: "t" } });
  const delivery = positioned({ n: 1 }, 7, 'e"1');
  subscription.offer(delivery);
  assert.equal(
    delivery.frame(subscription.extraJson),
    '{"event":"message","subscription":"books.1","data":{"n":1},"offset":7,"epoch":"e\\"1","tag":"t"}',
  );
  assert.deepEqual(session.sent[0].frame, JSON.parse(delivery.frame(subscription.extraJson)));
});

Deno.test("join and leave: held with messages until release, in order; no filter, order or throttle applies", () => {
  const { session, subscription, publish, dropped } = setUp({
    service: { filter_fields: ["user_id"], extra_fields: ["room"] },
    extra: { room: "r" },
    authInfo: { user_id: "u1" },
    holding: true,
  });
  const member = '{"client":"c2","user":"u2","info":{}}';
  const notice = (kind: "join" | "leave") =>
    presenceNotice(TOPIC, presencePayload(kind, TOPIC, member))!;
  publish(1, { order: 1, throttle: 60 }, { user_id: "u1" });
  subscription.notify(notice("join"));
  publish(2, { order: 2, throttle: 60 }, { user_id: "u1" });
  assert.equal(session.sent.length, 0, "held while the subscription is");
  subscription.release();
  // Message 2 is throttled (60 s after 1); the leave after it is not.
  subscription.notify(notice("leave"));
  assert.deepEqual(
    session.sent.map(({ frame }) => frame.event === "message" ? frame.data : frame),
    [
      1,
      { event: "join", subscription: TOPIC, member: JSON.parse(member), room: "r" },
      { event: "leave", subscription: TOPIC, member: JSON.parse(member), room: "r" },
    ],
  );
  assert.equal(dropped("filter"), 0);
});
