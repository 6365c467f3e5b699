/**
 * SPEC section 12 end to end on the memory adapter: the client id in the
 * subscribe reply, member lists and their counts, what a member shows (and
 * never shows), `join` and `leave` exactly once for every way a
 * subscription ends and never to the member's own session, their order with
 * messages, the `presence` event's errors in order, graceful shutdown, and
 * services without presence looking exactly as before. The server API's
 * ways of ending subscriptions: `server_api_test.ts`; the rules on fakes:
 * `presence_rules_test.ts`.
 */
import assert from "node:assert/strict";
import { MemoryPubSub, type SharkConfigInput } from "../mod.ts";
import { MemoryPresence } from "../adapters/memory_presence.ts";
import { errorReply, okReply, type TestClient } from "./helpers/client.ts";
import { FakeClock } from "./helpers/clock.ts";
import { TestService } from "./helpers/service.ts";
import { TestShark } from "./helpers/shark.ts";

type Json = Record<string, unknown>;
type ServiceConfig = NonNullable<SharkConfigInput["services"]>[string];

const ROOM = "chat.room";

/** A ticket service whose ticket is the JSON text of the auth info it returns. */
function ticketService(answers: ConstructorParameters<typeof TestService>[0] = {}): TestService {
  return new TestService({
    "/ticket": (call) => ({ status: "ok", ...JSON.parse(call.body.ticket as string) }),
    ...answers,
  });
}

/** `chat` with presence (`name` and the extra field `room_role` shown), `plain` without. */
function config(
  service: TestService,
  chat: ServiceConfig = {},
  more: SharkConfigInput = {},
): SharkConfigInput {
  return {
    authentication: {
      ticket: {
        validation_url: service.url("/ticket"),
        auth_fields: ["user_id", "session_id", "name", "email"],
      },
    },
    services: {
      chat: {
        extra_fields: ["room_role"],
        presence: { fields: ["name", "room_role"] },
        before_unsubscribe: service.url("/before_unsubscribe"),
        on_unsubscribe: service.url("/on_unsubscribe"),
        ...chat,
      },
      plain: { require_authentication: false },
      quiet: { require_authentication: false, presence: { join_leave: false } },
    },
    ...more,
  };
}

/** A connected, authenticated client subscribed to `subscription`, and its client id. */
async function join(
  shark: TestShark,
  authInfo: Json,
  extra: Json = {},
  subscription = ROOM,
): Promise<{ client: TestClient; id: string; reply: Json }> {
  const client = await shark.connect();
  await client.auth(JSON.stringify(authInfo));
  const reply = await client.subscribe(subscription, extra);
  assert.equal(typeof reply.client, "string");
  return { client, id: reply.client as string, reply };
}

function byClient(members: unknown): Json[] {
  return [...(members as Json[])].sort((a, b) => String(a.client).localeCompare(String(b.client)));
}

Deno.test("a subscribe reply of a presence service carries the client id; presence lists every member, clients and distinct users", async () => {
  await using service = ticketService();
  await using shark = await TestShark.start(config(service));
  const alice = await join(shark, { user_id: "u1", name: "Alice" }, { room_role: "host" });
  assert.deepEqual(
    alice.reply,
    okReply("subscribe", {
      subscription: ROOM,
      room_role: "host",
      client: alice.id,
    }),
  );
  const bob = await join(shark, { user_id: "u2", name: "Bob" });
  // A second connection of the same user is a second member, not a second user.
  const bobAgain = await join(shark, { user_id: "u2", name: "Bob" });
  assert.equal(new Set([alice.id, bob.id, bobAgain.id]).size, 3, "client ids are unique");
  await alice.client.take(2); // the joins of bob's connections
  const reply = await alice.client.request({ event: "presence", subscription: ROOM });
  assert.deepEqual({ ...reply, members: byClient(reply.members) }, {
    event: "presence",
    status: "ok",
    subscription: ROOM,
    room_role: "host",
    members: byClient([
      { client: alice.id, user: "u1", info: { name: "Alice", room_role: "host" } },
      { client: bob.id, user: "u2", info: { name: "Bob" } },
      { client: bobAgain.id, user: "u2", info: { name: "Bob" } },
    ]),
    clients: 3,
    users: 2,
  });
  const metrics = shark.shark.metrics.snapshot();
  assert.equal(metrics.presence_members, 3);
  assert.equal(metrics["presenceRequests.ok"], 1);
  assert.equal(metrics["presenceEvents.join"], 3, "two to alice, one to bob");
});

Deno.test("user: a string as it is, any other JSON value as its JSON text, absent as empty; users counts distinct non-empty ones", async () => {
  await using service = ticketService();
  await using shark = await TestShark.start(config(service, { presence: {} }));
  const infos = [
    { user_id: "7" },
    { user_id: 7 },
    { user_id: { org: 1, id: [2] } },
    { user_id: null },
    { user_id: "" },
    { name: "no user" },
  ];
  const ids = [];
  for (const info of infos) ids.push((await join(shark, info)).id);
  const reply = await (await join(shark, { user_id: "7" })).client.request({
    event: "presence",
    subscription: ROOM,
  });
  const users = new Map((reply.members as Json[]).map((member) => [member.client, member.user]));
  assert.deepEqual(ids.map((id) => users.get(id)), [
    "7",
    "7",
    '{"org":1,"id":[2]}',
    "null",
    "",
    "",
  ]);
  // "7" (three members), the JSON object, "null": the empty users are not counted.
  assert.deepEqual([reply.clients, reply.users], [7, 3]);
  // No fields configured: every member's info is empty.
  assert.ok(
    (reply.members as Json[]).every((member) => Object.keys(member.info as Json).length === 0),
  );
});

Deno.test("fields never shows an auth field it does not list: session_id and email stay private everywhere", async () => {
  await using service = ticketService();
  await using shark = await TestShark.start(config(service));
  const secret = { user_id: "u1", session_id: "SECRET-SESSION", email: "SECRET@MAIL", name: "Ann" };
  const watcher = await join(shark, { user_id: "w", session_id: "SECRET-WATCHER" });
  const ann = await join(shark, secret, { room_role: "guest", ignored: "x" });
  const joined = await watcher.client.next();
  const reply = await watcher.client.request({ event: "presence", subscription: ROOM });
  await ann.client.request({ event: "unsubscribe", subscription: ROOM });
  const left = await watcher.client.next();
  const member = { client: ann.id, user: "u1", info: { name: "Ann", room_role: "guest" } };
  assert.deepEqual(joined.member, member);
  assert.deepEqual(left.member, member);
  assert.ok((reply.members as Json[]).some((one) => one.client === ann.id));
  for (const text of [joined, reply, left].map((frame) => JSON.stringify(frame))) {
    assert.doesNotMatch(text, /SECRET|session_id|email|ignored/, text);
  }
});

Deno.test("join and leave reach every other session once, with its extra fields and no metadata; the member's own session gets neither", async () => {
  await using service = ticketService();
  await using shark = await TestShark.start(config(service));
  const alice = await join(shark, { user_id: "u1", name: "Alice" }, { room_role: "host" });
  const carol = await join(shark, { user_id: "u3", name: "Carol" });
  await alice.client.next(); // carol's join
  const bob = await join(shark, { user_id: "u2", name: "Bob" }, { room_role: "guest" });
  const member = { client: bob.id, user: "u2", info: { name: "Bob", room_role: "guest" } };
  // Metadata is on (the default): joins carry none of it.
  assert.deepEqual(await alice.client.next(), {
    event: "join",
    subscription: ROOM,
    member,
    room_role: "host",
  });
  assert.deepEqual(await carol.client.next(), { event: "join", subscription: ROOM, member });
  assert.deepEqual(
    await bob.client.request({ event: "unsubscribe", subscription: ROOM }),
    okReply("unsubscribe", { subscription: ROOM, room_role: "guest" }),
  );
  assert.deepEqual(await alice.client.next(), {
    event: "leave",
    subscription: ROOM,
    member,
    room_role: "host",
  });
  assert.deepEqual(await carol.client.next(), { event: "leave", subscription: ROOM, member });
  for (const { client } of [alice, bob, carol]) assert.deepEqual(await client.sentSoFar(), []);
  assert.equal(shark.shark.metrics.snapshot()["presenceEvents.leave"], 2);
});

Deno.test("a leave is sent once for every way a subscription ends: unsubscribe, close, failed re-authorization", async () => {
  const refused = "failed re-authorization";
  let renewals = 0;
  await using service = ticketService({
    // Its first authorization passes, its renewal fails.
    "/authorizer": (call) =>
      call.body.user_id === refused && ++renewals > 1
        ? { status: "error", error: "Gone." }
        : { status: "ok" },
  });
  const clock = new FakeClock();
  await using shark = await TestShark.start(
    config(service, {
      authorizer: service.url("/authorizer"),
      authorization_renewal_period: 1,
    }),
    { clock },
  );
  const watcher = await join(shark, { user_id: "w" });
  const ends: [string, (member: TestClient) => Promise<unknown>][] = [
    ["unsubscribe", (member) => member.request({ event: "unsubscribe", subscription: ROOM })],
    ["close", (member) => member.close()],
    [refused, async (member) => {
      clock.tick(1000);
      assert.equal((await member.next()).error, "Gone.");
    }],
  ];
  for (const [way, end] of ends) {
    const member = await join(shark, { user_id: way });
    assert.equal((await watcher.client.next()).event, "join", way);
    await end(member.client);
    const leave = await watcher.client.next();
    assert.deepEqual([leave.event, (leave.member as Json).client], ["leave", member.id], way);
    await service.waitFor("/on_unsubscribe", ends.findIndex(([name]) => name === way) + 1);
  }
  assert.deepEqual(await watcher.client.sentSoFar(), []);
  const reply = await watcher.client.request({ event: "presence", subscription: ROOM });
  assert.deepEqual(reply.members, [{ client: watcher.id, user: "w", info: {} }]);
});

Deno.test("a later subscriber gets no joins of the members already there, and they get its join", async () => {
  await using service = ticketService();
  await using shark = await TestShark.start(config(service));
  const alice = await join(shark, { user_id: "u1" });
  const bob = await join(shark, { user_id: "u2" });
  await alice.client.next();
  const carol = await join(shark, { user_id: "u3" });
  assert.deepEqual(await carol.client.sentSoFar(), []);
  for (const { client } of [alice, bob]) {
    const frame = await client.next();
    assert.deepEqual([frame.event, (frame.member as Json).client], ["join", carol.id]);
  }
});

Deno.test("joins, leaves and messages of a topic reach a session in the order the adapter delivered them, also while its subscribe is held", async () => {
  const gate = Promise.withResolvers<void>();
  // Released however the test ends: the service cannot close with a call held.
  using _ = { [Symbol.dispose]: () => gate.resolve() };
  await using service = ticketService({
    "/before_subscribe": async (call) => {
      if (call.body.user_id === "slow") await gate.promise;
      return { status: "ok" };
    },
  });
  await using shark = await TestShark.start(
    config(service, { before_subscribe: service.url("/before_subscribe") }, {
      delivery: { metadata: false },
    }),
  );
  const alice = await join(shark, { user_id: "u1" });
  await shark.publish({ subscription: ROOM, data: 1 });
  const bob = await join(shark, { user_id: "u2" });
  await shark.publish({ subscription: ROOM, data: 2 });
  const events = (await alice.client.take(3)).map((frame) =>
    frame.event === "join" ? "join" : frame.data
  );
  assert.deepEqual(events, [1, "join", 2]);
  // A subscribe held in before_subscribe: what happens meanwhile waits for its reply.
  const slow = await shark.connect();
  await slow.auth(JSON.stringify({ user_id: "slow" }));
  slow.send({ event: "subscribe", subscription: ROOM });
  await service.waitFor("/before_subscribe", 3);
  await shark.publish({ subscription: ROOM, data: 3 });
  await bob.client.close();
  assert.deepEqual((await alice.client.take(2)).map((frame) => frame.data ?? frame.event), [
    3,
    "leave",
  ]);
  gate.resolve();
  const [ok, message, leave] = await slow.take(3);
  assert.equal(ok.status, "ok");
  assert.deepEqual(message, { event: "message", subscription: ROOM, data: 3 });
  assert.deepEqual([leave.event, (leave.member as Json).client], ["leave", bob.id]);
});

Deno.test("the presence event's errors, in SPEC order: format, service, not enabled, not subscribed, store unavailable", async () => {
  class BrokenPresence extends MemoryPresence {
    override read(): Promise<never> {
      return Promise.reject(new Error("store down"));
    }
  }
  class BrokenPubSub extends MemoryPubSub {
    override readonly presence = new BrokenPresence(() => {});
  }
  await using service = ticketService();
  await using shark = await TestShark.start(config(service), { pubsub: new BrokenPubSub() });
  const { client } = await join(shark, { user_id: "u1" }, { room_role: "host" });
  const presence = (subscription?: unknown, extra: Json = {}) =>
    client.request({ event: "presence", subscription, ...extra });
  assert.deepEqual(await presence(), errorReply("presence", "Invalid subscription format."));
  assert.deepEqual(
    await presence("chat"),
    errorReply("presence", "Invalid subscription format.", { subscription: "chat" }),
  );
  // A service that is not configured, even one named like a presence topic.
  assert.deepEqual(
    await presence("nope.room"),
    errorReply("presence", "Invalid service.", { subscription: "nope.room" }),
  );
  // Not enabled comes before not subscribed.
  assert.deepEqual(
    await presence("plain.room"),
    errorReply("presence", "Presence not enabled.", { subscription: "plain.room" }),
  );
  assert.deepEqual(
    await presence("chat.other", { room_role: "x" }),
    errorReply("presence", "Subscription does not exist.", {
      subscription: "chat.other",
      room_role: "x",
    }),
  );
  assert.deepEqual(
    await presence(ROOM),
    errorReply("presence", "Service unavailable.", { subscription: ROOM, room_role: "host" }),
  );
  await client.pingPong("still open");
  assert.equal(shark.shark.metrics.snapshot()["presenceRequests.unavailable"], 1);
});

Deno.test("a subscribe whose member cannot be added gets Service unavailable. and ends as other failures do", async () => {
  class RefusingPresence extends MemoryPresence {
    override add(): Promise<never> {
      return Promise.reject(new Error("store down"));
    }
  }
  class RefusingPubSub extends MemoryPubSub {
    override readonly presence = new RefusingPresence(() => {});
  }
  await using service = ticketService();
  await using shark = await TestShark.start(config(service), { pubsub: new RefusingPubSub() });
  const client = await shark.connect();
  await client.auth(JSON.stringify({ user_id: "u1" }));
  assert.deepEqual(
    await client.request({ event: "subscribe", subscription: ROOM }),
    errorReply("subscribe", "Service unavailable.", { subscription: ROOM }),
  );
  await service.waitFor("/on_unsubscribe");
  assert.deepEqual(
    await client.request({ event: "presence", subscription: ROOM }),
    errorReply("presence", "Subscription does not exist.", { subscription: ROOM }),
  );
  assert.equal(shark.shark.metrics.presenceMembers, 0);
  assert.equal(shark.shark.metrics.subscriptionsOpen, 0);
});

Deno.test("join_leave false: members are listed, no join or leave is sent", async () => {
  await using service = ticketService();
  await using shark = await TestShark.start(config(service));
  const first = await join(shark, {}, {}, "quiet.room");
  const second = await join(shark, {}, {}, "quiet.room");
  await second.client.close();
  const reply = await first.client.request({ event: "presence", subscription: "quiet.room" });
  assert.deepEqual(reply.members, [{ client: first.id, user: "", info: {} }]);
  assert.equal(shark.shark.metrics.snapshot()["presenceEvents.join"], undefined);
});

Deno.test("graceful shutdown removes every member, sending its leave, before the adapter closes", async () => {
  const log: string[] = [];
  class Recorded extends MemoryPubSub {
    override readonly presence = new (class extends MemoryPresence {
      override remove(topic: string, client: string, options: { ttl: number; joinLeave: boolean }) {
        log.push(`remove ${client}`);
        return super.remove(topic, client, options);
      }
    })((topic, payload) => this.publish(topic, payload));
    override async close(): Promise<void> {
      log.push(`close with ${(await this.presence.read(ROOM)).length} members`);
      return super.close();
    }
  }
  await using service = ticketService();
  const shark = await TestShark.start(config(service), { pubsub: new Recorded() });
  const alice = await join(shark, { user_id: "u1" });
  const bob = await join(shark, { user_id: "u2" });
  await shark.shark.shutdown();
  assert.deepEqual(log.slice(0, 2).sort(), [`remove ${alice.id}`, `remove ${bob.id}`].sort());
  assert.deepEqual(log.slice(2), ["close with 0 members"]);
  await shark.stop();
});

Deno.test("a service without presence and its clients see no difference: no client id, no joins, nothing new", async () => {
  await using service = ticketService();
  await using shark = await TestShark.start(config(service, {}, { delivery: { metadata: false } }));
  const first = await shark.subscriber("plain.room");
  const reply = await (await shark.connect()).request({
    event: "subscribe",
    subscription: "plain.room",
  });
  assert.deepEqual(reply, okReply("subscribe", { subscription: "plain.room" }));
  await shark.publish({ subscription: "plain.room", data: 1 });
  assert.deepEqual(await first.next(), { event: "message", subscription: "plain.room", data: 1 });
  assert.deepEqual(await first.sentSoFar(), []);
  assert.equal(shark.shark.metrics.presenceMembers, 0);
});

Deno.test("an envelope that only starts like a join/leave payload is delivered as a message", async () => {
  await using service = ticketService();
  await using shark = await TestShark.start(config(service, {}, { delivery: { metadata: false } }));
  const { client } = await join(shark, { user_id: "u1" });
  await shark.publish({ "shark.presence": "join", subscription: ROOM, data: 1 });
  assert.deepEqual(await client.next(), { event: "message", subscription: ROOM, data: 1 });
});

Deno.test("a subscribe whose connection closed during before_subscribe never becomes a member: no join, no leave", async () => {
  const gate = Promise.withResolvers<void>();
  using _ = { [Symbol.dispose]: () => gate.resolve() };
  await using service = ticketService({
    "/before_subscribe": async (call) => {
      if (call.body.user_id === "gone") await gate.promise;
      return { status: "ok" };
    },
  });
  await using shark = await TestShark.start(
    config(service, { before_subscribe: service.url("/before_subscribe") }),
  );
  const watcher = await join(shark, { user_id: "w" });
  const gone = await shark.connect();
  await gone.auth(JSON.stringify({ user_id: "gone" }));
  gone.send({ event: "subscribe", subscription: ROOM });
  await service.waitFor("/before_subscribe", 2);
  await gone.close();
  gate.resolve();
  await service.waitFor("/on_unsubscribe");
  assert.deepEqual(await watcher.client.sentSoFar(), []);
  assert.equal(shark.shark.metrics.presenceMembers, 1);
});
