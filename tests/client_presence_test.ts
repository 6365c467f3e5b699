/**
 * The client SDK's presence (SPEC sections 12 and 13, docs/protocol.md):
 * `presence()` and its errors, `onJoin`/`onLeave`, the connection's
 * `client` id across reconnects, and the server API's close codes 4003
 * (final) and 4004 (reconnect). Rules the client applies to frames run
 * against a scripted server (`helpers/fake_shark.ts`), the client's waits on
 * a fake clock; the file ends with the SDK against a real in-process Shark
 * (memory adapter): members, joins and leaves, and `POST /disconnect`.
 */
import assert from "node:assert/strict";
import {
  type JsonObject,
  type Member,
  type Presence,
  SharkError,
  type SubscribeReply,
} from "../client.ts";
import { AppService, Recorder, testClient } from "./helpers/client_app.ts";
import { FakeClock } from "./helpers/clock.ts";
import { FakeShark } from "./helpers/fake_shark.ts";
import { TestShark } from "./helpers/shark.ts";
import { waitUntil } from "./helpers/wait.ts";

const FAST = { backoff: { min: 50, max: 200 }, random: () => 1 } as const;

const ADA: Member = { client: "c1", user: "ada", info: { name: "Ada" } };
const BOB: Member = { client: "x9", user: "bob", info: {} };

/** A presence reply as Shark sends it: the members, their counts, and `extra`. */
function presenceReply(frame: JsonObject, members: Member[], extra: JsonObject = {}): JsonObject {
  const users = new Set(members.map((member) => member.user).filter((user) => user !== ""));
  return {
    event: "presence",
    subscription: frame.subscription,
    status: "ok",
    members,
    clients: members.length,
    users: users.size,
    ...extra,
  };
}

Deno.test("presence() sent before the subscribe reply waits until subscribed, then resolves with members, clients and users; client is the subscribe reply's id", async () => {
  await using shark = new FakeShark();
  shark.answer = (frame) =>
    frame.event === "presence"
      ? presenceReply(frame, [ADA, BOB], { room: "extra field" })
      : undefined;
  await using client = testClient(shark.url, FAST);
  const room = client.subscribe("chat.lobby");
  assert.equal(room.client, undefined);
  const presence = room.presence();
  assert.equal((await room.ready).client, "c1");
  assert.equal(room.client, "c1");
  assert.deepEqual(await presence, { members: [ADA, BOB], clients: 2, users: 2 });
  assert.deepEqual(shark.of("presence"), [{ event: "presence", subscription: "chat.lobby" }]);
  const events = shark.received.map(({ frame }) => frame.event);
  assert.ok(events.indexOf("subscribe") < events.indexOf("presence"), String(events));
});

Deno.test("presence() rejects with the error reply as a SharkError; a refused subscribe rejects it with the subscribe's error; an ended subscription with not subscribed", async () => {
  await using shark = new FakeShark();
  const errors = ["Presence not enabled.", "Subscription does not exist.", "Service unavailable."];
  shark.answer = (frame) => {
    if (frame.event === "subscribe" && frame.subscription === "nochat.x") {
      return {
        event: "subscribe",
        subscription: "nochat.x",
        status: "error",
        error: "Invalid service.",
      };
    }
    if (frame.event === "presence") {
      return {
        event: "presence",
        subscription: frame.subscription,
        status: "error",
        error: errors[shark.of("presence").length - 1],
      };
    }
  };
  await using client = testClient(shark.url, FAST);
  const room = client.subscribe("chat.lobby");
  await room.ready;
  for (const expected of errors) {
    const error = await room.presence().then(() => undefined, (error) => error);
    assert.ok(error instanceof SharkError);
    assert.equal(error.message, expected);
    assert.equal(error.reply?.event, "presence");
    assert.equal(error.reply?.status, "error");
  }
  assert.equal(room.state, "subscribed", "a refused presence ends nothing");

  const refused = client.subscribe("nochat.x");
  const error = await refused.presence().then(() => undefined, (error) => error);
  assert.ok(error instanceof SharkError);
  assert.equal(error.message, "Invalid service.");
  assert.equal(error.reply?.event, "subscribe");

  await room.unsubscribe();
  await assert.rejects(room.presence(), /not subscribed/);
  assert.equal(shark.of("presence").length, 3);
});

Deno.test("join and leave go to onJoin and onLeave with the member, never to onMessage; without the callbacks they are dropped", async () => {
  await using shark = new FakeShark();
  await using client = testClient(shark.url, FAST);
  const events = new Recorder(client);
  const seen: string[] = [];
  const room = client.subscribe("chat.lobby", {
    onJoin: (member) => seen.push(`join ${member.client} ${member.info.name}`),
    onLeave: (member) => seen.push(`leave ${member.client} ${member.user}`),
    onMessage: (message) => seen.push(`message ${JSON.stringify(message.data)}`),
  });
  const quiet = client.subscribe("chat.quiet", {
    onMessage: (message) => seen.push(`quiet ${JSON.stringify(message.data)}`),
  });
  await Promise.all([room.ready, quiet.ready]);
  shark.push({ event: "join", subscription: "chat.lobby", member: ADA });
  shark.push({ event: "message", subscription: "chat.lobby", data: "hi" });
  shark.push({ event: "join", subscription: "chat.quiet", member: ADA });
  shark.push({ event: "leave", subscription: "chat.quiet", member: ADA });
  shark.push({ event: "leave", subscription: "chat.lobby", member: BOB });
  shark.push({ event: "message", subscription: "chat.quiet", data: "end" });
  await waitUntil(() => seen.length === 4, 3000, "four frames routed");
  assert.deepEqual(seen, [
    "join c1 Ada",
    'message "hi"',
    "leave x9 bob",
    'quiet "end"',
  ]);
  assert.equal(events.of("error").length, 0);
});

Deno.test("after a reconnect: client is undefined while disconnected, onSubscribed(resubscribed) brings the new id, and presence() there reads the members again", async () => {
  await using shark = new FakeShark();
  shark.answer = (frame, connection) =>
    frame.event === "presence"
      ? presenceReply(frame, [{ client: `c${connection}`, user: "ada", info: {} }])
      : undefined;
  const clock = new FakeClock();
  await using client = testClient(shark.url, { ...FAST, clock });
  const events = new Recorder(client);
  const reads: { resubscribed: boolean; client?: string; presence: Presence }[] = [];
  const room = client.subscribe("chat.lobby", {
    onSubscribed: async (reply: SubscribeReply, resubscribed) => {
      const presence = await room.presence();
      reads.push({ resubscribed, client: reply.client, presence });
    },
  });
  await waitUntil(() => reads.length === 1, 3000, "the first read");
  shark.close(1001, "server shutting down");
  await events.wait("disconnected");
  assert.equal(room.client, undefined);
  clock.tick(50);
  await waitUntil(() => reads.length === 2, 3000, "the read after the reconnect");
  assert.equal(room.client, "c2");
  assert.deepEqual(
    reads.map((
      { resubscribed, client, presence },
    ) => [resubscribed, client, presence.members[0].client]),
    [
      [false, "c1", "c1"],
      [true, "c2", "c2"],
    ],
  );
});

Deno.test("presence() on a connection lost before Shark answered rejects; one asked while disconnected goes out once resubscribed", async () => {
  await using shark = new FakeShark();
  shark.answer = (frame, connection) =>
    frame.event === "presence" && connection === 2 ? presenceReply(frame, []) : undefined;
  const clock = new FakeClock();
  await using client = testClient(shark.url, { ...FAST, clock });
  const events = new Recorder(client);
  const room = client.subscribe("chat.lobby");
  await room.ready;
  const lost = room.presence();
  await waitUntil(() => shark.of("presence").length === 1, 3000, "the first presence");
  shark.close(1011, "internal error");
  await assert.rejects(lost, /disconnected before Shark answered/);
  await events.wait("disconnected");
  const later = room.presence();
  clock.tick(50);
  assert.deepEqual(await later, { members: [], clients: 0, users: 0 });
  const asked = shark.received.filter(({ frame }) => frame.event === "presence");
  assert.deepEqual(asked.map(({ connection }) => connection), [1, 2]);
});

const SECRET = "a-publish-secret-of-32-characters";

function chatConfig(app: AppService) {
  return {
    authentication: app.authentication,
    publish_api: { secret: SECRET },
    services: {
      chat: { presence: { fields: ["user_id"], join_leave: true } },
      books: {},
    },
  };
}

/** The server API (SPEC section 13). */
async function serverApi(node: TestShark, path: string, body: unknown): Promise<unknown> {
  const response = await fetch(node.url(path), {
    method: "POST",
    headers: { authorization: `Bearer ${SECRET}` },
    body: JSON.stringify(body),
  });
  assert.equal(response.status, 200, path);
  return await response.json();
}

Deno.test("against Shark: each client finds itself by its client id and the other in presence(); the later one's join and its leaves (unsubscribe, connection closed) reach the first", async () => {
  await using app = new AppService();
  await using node = await TestShark.start(chatConfig(app));
  await using ada = testClient(node.wsUrl, { auth: () => app.issue(), ...FAST });
  const seen: string[] = [];
  const adaRoom = ada.subscribe("chat.lobby", {
    onJoin: (member) => seen.push(`join ${member.user}`),
    onLeave: (member) => seen.push(`leave ${member.user}`),
  });
  await adaRoom.ready;
  const bob = testClient(node.wsUrl, { auth: () => app.issue(), ...FAST });
  try {
    const bobRoom = bob.subscribe("chat.lobby");
    const reply = await bobRoom.ready;
    assert.equal(typeof reply.client, "string");
    assert.equal(bobRoom.client, reply.client);
    assert.notEqual(bobRoom.client, adaRoom.client);
    for (const room of [adaRoom, bobRoom]) {
      const { members, clients, users } = await room.presence();
      const byClient = new Map(members.map((member) => [member.client, member]));
      assert.deepEqual(byClient.get(adaRoom.client!), {
        client: adaRoom.client,
        user: "user-0",
        info: { user_id: "user-0" },
      });
      assert.equal(byClient.get(bobRoom.client!)?.user, "user-1");
      assert.deepEqual([clients, users], [2, 2]);
    }
    await waitUntil(() => seen.length === 1, 3000, "bob's join");
    await bobRoom.unsubscribe();
    await waitUntil(() => seen.length === 2, 3000, "bob's leave");
    bob.subscribe("chat.lobby");
    await waitUntil(() => seen.length === 3, 3000, "bob's join again");
  } finally {
    await bob.close();
  }
  await waitUntil(() => seen.length === 4, 3000, "bob's leave on close");
  assert.deepEqual(seen, ["join user-1", "leave user-1", "join user-1", "leave user-1"]);
  assert.deepEqual((await adaRoom.presence()).clients, 1);
  const plain = ada.subscribe("books.b1");
  await assert.rejects(plain.presence(), /^SharkError: Presence not enabled\.$/);
});

Deno.test("against Shark: POST /disconnect closes with 4003 and the client stays closed; with reconnect: true, 4004 and it comes back with a new client id", async () => {
  await using app = new AppService();
  await using node = await TestShark.start(chatConfig(app));
  const clock = new FakeClock();
  await using client = testClient(node.wsUrl, { auth: () => app.issue(), ...FAST, clock });
  const events = new Recorder(client);
  const room = client.subscribe("chat.lobby");
  const first = (await room.ready).client;
  await serverApi(node, "/disconnect", { client: first, reconnect: true });
  const [again] = await events.wait("disconnected");
  assert.deepEqual(again.detail, {
    code: 4004,
    reason: "disconnected, reconnect",
    reconnect: true,
    delay: 50,
  });
  clock.tick(50);
  await waitUntil(() => room.client !== undefined, 5000, "subscribed again");
  assert.notEqual(room.client, first);

  await serverApi(node, "/disconnect", { match: { user_id: "user-1" } });
  const [, closed] = await events.wait("disconnected", 2);
  assert.deepEqual(closed.detail, {
    code: 4003,
    reason: "disconnected",
    reconnect: false,
    delay: null,
  });
  assert.equal(client.state, "closed");
  assert.equal(room.state, "ended");
  assert.equal(clock.pending, 0, "no reconnect due");
});
