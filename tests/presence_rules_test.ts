/**
 * SPEC section 12's rules on their own, without sockets: the join/leave
 * payload and how it is recognized, what a member shows, the summary's
 * counts, the memory store's one-leave-per-member guarantee, and the
 * keeper's refresh cadence on a fake clock. End to end: `presence_test.ts`.
 */
import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import { loadConfig, Metrics } from "../mod.ts";
import { MemoryPresence } from "../adapters/memory_presence.ts";
import { memberOf, summarize } from "../src/presence/member.ts";
import { PresenceKeeper } from "../src/presence/keeper.ts";
import { Presence } from "../src/presence/presence.ts";
import {
  memberJson,
  parsePresence,
  PRESENCE_PREFIX,
  presencePayload,
} from "../src/presence/presence_payload.ts";
import type { PresenceConfig } from "../src/config/config.ts";
import type { Member, PresenceStore } from "../src/presence/store.ts";
import { Subscription } from "../src/delivery/subscription.ts";
import { FakeClock } from "./helpers/clock.ts";

const PRESENCE: PresenceConfig = { fields: [], user_field: "user_id", join_leave: true, ttl: 60 };
const OPTIONS = { ttl: 60, joinLeave: true };

Deno.test("the join/leave payload: shark.presence first, the topic as JSON, the member's JSON as given", () => {
  const member: Member = { client: "c1", user: 'u"1', info: { name: "Ann", n: [1] } };
  const json = memberJson(member);
  assert.equal(json, '{"client":"c1","user":"u\\"1","info":{"name":"Ann","n":[1]}}');
  const payload = presencePayload("join", 'chat."room"', json);
  assert.equal(
    payload,
    `{"shark.presence":"join","subscription":"chat.\\"room\\"","member":${json}}`,
  );
  assert.ok(payload.startsWith(PRESENCE_PREFIX));
  assert.deepEqual(parsePresence(payload), { kind: "join", member, memberJson: json });
  assert.equal(parsePresence(presencePayload("leave", "a.b", json))?.kind, "leave");
});

Deno.test("only a well-formed join/leave payload is one; anything else is left to the envelope path", () => {
  const member = '{"client":"c1","user":"","info":{}}';
  for (
    const payload of [
      `{"subscription":"a.b","data":1,"shark.presence":"join","member":${member}}`,
      `{"shark.presence":"hello","subscription":"a.b","member":${member}}`,
      `{"shark.presence":"join","subscription":"a.b","member":{"client":1,"user":"","info":{}}}`,
      `{"shark.presence":"join","subscription":"a.b","member":{"client":"c","info":{}}}`,
      `{"shark.presence":"join","subscription":"a.b","member":{"client":"c","user":"","info":[]}}`,
      `{"shark.presence":"join","subscription":"a.b"}`,
      `{"shark.presence":"join",`,
    ]
  ) {
    assert.equal(parsePresence(payload), undefined, payload);
  }
});

Deno.test("a member shows the listed fields it has, from auth info and extra fields (the extra value wins), nothing else", () => {
  const presence = { ...PRESENCE, fields: ["name", "room", "role", "absent"] };
  const member = memberOf(
    "c1",
    { user_id: "u1", session_id: "secret", name: "Ann", role: "auth" },
    { role: "extra", room: "r1", other: "x" },
    presence,
  );
  assert.deepEqual(member, {
    client: "c1",
    user: "u1",
    info: { name: "Ann", room: "r1", role: "extra" },
  });
  assert.deepEqual(memberOf("c2", { name: "Ann" }, {}, PRESENCE).info, {});
  // A "__proto__" field stays a plain key of info.
  const odd = memberOf("c3", JSON.parse('{"__proto__":{"x":1}}'), {}, {
    ...PRESENCE,
    fields: ["__proto__"],
  });
  assert.equal(memberJson(odd), '{"client":"c3","user":"","info":{"__proto__":{"x":1}}}');
});

Deno.test("user: the user_field auth value, a string as it is, other JSON as its text, absent as empty; never from extra fields", () => {
  const user = (authInfo: Record<string, unknown>, extra = {}) =>
    memberOf("c", authInfo, extra, { ...PRESENCE, user_field: "uid" }).user;
  assert.equal(user({ uid: "u1" }), "u1");
  assert.equal(user({ uid: 12.5 }), "12.5");
  assert.equal(user({ uid: false }), "false");
  assert.equal(user({ uid: ["a", { b: null }] }), '["a",{"b":null}]');
  assert.equal(user({}), "");
  assert.equal(user({}, { uid: "from the request" }), "");
});

Deno.test("the summary: clients is the number of members, users the distinct non-empty users", () => {
  const members = ["u1", "u2", "u1", "", ""].map((user, i) => ({
    client: `c${i}`,
    user,
    info: {},
  }));
  assert.deepEqual(summarize(members), { members, clients: 5, users: 2 });
  assert.deepEqual(summarize([]), { members: [], clients: 0, users: 0 });
});

Deno.test("the memory store: a join per add, exactly one leave per member whoever removes it, none with join_leave off", async () => {
  const published: string[] = [];
  const store = new MemoryPresence((topic, payload) => published.push(`${topic} ${payload}`));
  const member: Member = { client: "c1", user: "u1", info: { a: 1 } };
  const json = memberJson(member);
  await store.add("chat.r", member, OPTIONS);
  assert.deepEqual(await store.read("chat.r"), [member]);
  assert.deepEqual(await Promise.all([1, 2, 3].map(() => store.remove("chat.r", "c1", OPTIONS))), [
    true,
    false,
    false,
  ]);
  assert.equal(await store.remove("chat.r", "never", OPTIONS), false);
  assert.deepEqual(published, [
    `chat.r ${presencePayload("join", "chat.r", json)}`,
    `chat.r ${presencePayload("leave", "chat.r", json)}`,
  ]);
  assert.deepEqual(await store.read("chat.r"), []);
  const quiet = { ttl: 60, joinLeave: false };
  await store.add("chat.q", member, quiet);
  assert.equal(await store.remove("chat.q", "c1", quiet), true);
  assert.equal(published.length, 2);
  // One process is the whole deployment: no member of a stopped node to expire.
  assert.deepEqual(await store.refresh(), { expired: 0, lapsed: false });
});

/** This node's presence as the keeper sees it: its topics, and the refreshes asked for. */
class FakeNode {
  local = new Set<string>();
  readonly refreshes: [number, string][] = [];
  /** Settles the refreshes in progress. */
  pending: PromiseWithResolvers<void>[] = [];
  slow = false;

  constructor(readonly clock: FakeClock) {}

  topics(): Iterable<string> {
    return this.local;
  }

  refresh(topic: string): Promise<void> {
    this.refreshes.push([this.clock.now(), topic]);
    if (!this.slow) return Promise.resolve();
    const done = Promise.withResolvers<void>();
    this.pending.push(done);
    return done.promise;
  }
}

/** Moves fake time on in 1 s steps, letting each finished round settle in between. */
async function advance(clock: FakeClock, ms: number): Promise<void> {
  for (let step = 0; step < ms; step += 1000) {
    clock.tick(1000);
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

Deno.test("the keeper refreshes every ttl/3, per service, the topics this node has members in", async () => {
  const clock = new FakeClock();
  const node = new FakeNode(clock);
  const config = loadConfig({
    services: {
      fast: { presence: { ttl: 6 } },
      slow: { presence: { ttl: 30 } },
      plain: {},
    },
  });
  const keeper = new PresenceKeeper(node, config.services, clock);
  keeper.start();
  node.local = new Set(["fast.a", "fast.b", "slow.a", "plain.a", "fastidious.a"]);
  await advance(clock, 10_000);
  assert.deepEqual(node.refreshes, [
    [2000, "fast.a"],
    [2000, "fast.b"],
    [4000, "fast.a"],
    [4000, "fast.b"],
    [6000, "fast.a"],
    [6000, "fast.b"],
    [8000, "fast.a"],
    [8000, "fast.b"],
    // Due at the same time, the one set first runs first.
    [10_000, "slow.a"],
    [10_000, "fast.a"],
    [10_000, "fast.b"],
  ]);
  // A topic without local members any more is not refreshed.
  node.local.delete("fast.b");
  node.refreshes.length = 0;
  await advance(clock, 2000);
  assert.deepEqual(node.refreshes, [[12_000, "fast.a"]]);
  keeper.close();
  await advance(clock, 60_000);
  assert.deepEqual(node.refreshes, [[12_000, "fast.a"]]);
  assert.equal(clock.pending, 0);
});

Deno.test("the keeper does not overlap a round still in progress: the next one waits for the cadence after it", async () => {
  const clock = new FakeClock();
  const node = new FakeNode(clock);
  node.local.add("chat.a");
  node.slow = true;
  const keeper = new PresenceKeeper(
    node,
    loadConfig({ services: { chat: { presence: { ttl: 6 } } } }).services,
    clock,
  );
  keeper.start();
  await advance(clock, 6000);
  assert.deepEqual(node.refreshes, [[2000, "chat.a"]], "rounds at 4 s and 6 s skipped");
  for (const done of node.pending) done.resolve();
  await advance(clock, 2000);
  assert.deepEqual(node.refreshes, [[2000, "chat.a"], [8000, "chat.a"]]);
  keeper.close();
});

Deno.test("a refresh counts the members it expired, and a failed one is logged, never thrown", async () => {
  const metrics = new Metrics();
  let fail = false;
  const store: PresenceStore = {
    prepare: () => Promise.resolve(),
    add: () => Promise.resolve(),
    remove: () => Promise.resolve(true),
    read: () => Promise.resolve([]),
    refresh: () =>
      fail ? Promise.reject(new Error("down")) : Promise.resolve({ expired: 2, lapsed: false }),
  };
  const presence = new Presence(store, metrics, getLogger(["shark-test"]));
  await presence.refresh("chat.a", PRESENCE);
  await presence.refresh("chat.b", PRESENCE);
  fail = true;
  await presence.refresh("chat.a", PRESENCE);
  assert.equal(metrics.presenceExpired, 4);
  assert.match(metrics.prometheus(), /^shark_presence_expired_total 4$/m);
});

Deno.test("a member whose removal failed is removed at its topic's next refresh, before the refresh keeps it alive", async () => {
  const calls: string[] = [];
  let down = true;
  const store: PresenceStore = {
    prepare: () => Promise.resolve(),
    add: () => Promise.resolve(),
    remove: (topic, client) => {
      calls.push(`remove ${topic} ${client}`);
      return down ? Promise.reject(new Error("down")) : Promise.resolve(true);
    },
    read: () => Promise.resolve([]),
    refresh: (topic) => {
      calls.push(`refresh ${topic}`);
      return Promise.resolve({ expired: 0, lapsed: false });
    },
  };
  const metrics = new Metrics();
  const presence = new Presence(store, metrics, getLogger(["shark-test"]));
  const config = loadConfig({
    services: { chat: { require_authentication: false, presence: {} } },
  });
  const subscription = new Subscription(
    {
      client: "c1",
      authInfo: {},
      log: getLogger(["shark-test"]),
      deliver: () => true,
      notify: () => true,
    },
    "chat.a",
    config.services.chat,
    {},
    { metrics, maxKeys: 10 },
  );
  await presence.enter(subscription);
  await presence.leave(subscription);
  down = false;
  await presence.refresh("chat.a", PRESENCE);
  await presence.refresh("chat.a", PRESENCE);
  assert.deepEqual(calls, [
    "remove chat.a c1",
    "remove chat.a c1",
    "refresh chat.a",
    "refresh chat.a",
  ]);
  assert.equal(metrics.presenceMembers, 0);
});

Deno.test("a node taken for dead adds its members again at the refresh that finds out, as they were made; one ended meanwhile is removed again", async () => {
  const calls: string[] = [];
  const adding: PromiseWithResolvers<void>[] = [];
  let lapsed = false;
  const store: PresenceStore = {
    prepare: () => Promise.resolve(),
    add: (topic, member) => {
      calls.push(`add ${topic} ${member.client} ${JSON.stringify(member.info)}`);
      if (!lapsed) return Promise.resolve();
      const held = Promise.withResolvers<void>();
      adding.push(held);
      return held.promise;
    },
    remove: (topic, client) => {
      calls.push(`remove ${topic} ${client}`);
      return Promise.resolve(true);
    },
    read: () => Promise.resolve([]),
    refresh: () => Promise.resolve({ expired: 0, lapsed }),
  };
  const metrics = new Metrics();
  const presence = new Presence(store, metrics, getLogger(["shark-test"]));
  const config = loadConfig({
    authentication: { ticket: { validation_url: "http://auth/", auth_fields: ["name"] } },
    services: { chat: { require_authentication: false, presence: { fields: ["name"] } } },
  });
  const subscriptionOf = (client: string, authInfo: Record<string, string>) =>
    new Subscription(
      { client, authInfo, log: getLogger(["shark-test"]), deliver: () => true, notify: () => true },
      "chat.a",
      config.services.chat,
      {},
      { metrics, maxKeys: 10 },
    );
  const staying = subscriptionOf("c1", { name: "Ann" });
  const ending = subscriptionOf("c2", { name: "Bob" });
  await presence.enter(staying);
  await presence.enter(ending);
  // A later auth does not change what the member shows (SPEC 12), also when it is added again.
  (staying.session as { authInfo: Record<string, string> }).authInfo = { name: "Changed" };
  calls.length = 0;
  lapsed = true;
  const refreshed = presence.refresh("chat.a", config.services.chat.presence!);
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(calls, ['add chat.a c1 {"name":"Ann"}', 'add chat.a c2 {"name":"Bob"}']);
  // c2 ends while its add is on its way: its removal may reach the store first.
  await presence.leave(ending);
  for (const held of adding) held.resolve();
  await refreshed;
  assert.deepEqual(calls.slice(2), ["remove chat.a c2", "remove chat.a c2"]);
  assert.equal(metrics.presenceMembers, 1);
});
