/**
 * SPEC section 13 end to end on the memory adapter: `POST /presence`,
 * `/disconnect` and `/unsubscribe`, authorized exactly like `POST /publish`,
 * their 400 answers (nothing done), what they do to the matching sessions
 * and only to those (close codes and reasons, callbacks, the `unsubscribe`
 * event, leaves), the engine's methods of the same names, and commands
 * arriving on the control topic as from another node.
 */
import assert from "node:assert/strict";
import { CloseReason, MemoryPubSub, ServerApiError, type SharkConfigInput } from "../mod.ts";
import { MemoryPresence } from "../adapters/memory_presence.ts";
import type { TestClient } from "./helpers/client.ts";
import { TestService } from "./helpers/service.ts";
import { TestShark } from "./helpers/shark.ts";

type Json = Record<string, unknown>;

const SECRET = "server-api-secret-123";
const ROOM = "chat.room";

function config(service: TestService, more: SharkConfigInput = {}): SharkConfigInput {
  return {
    authentication: {
      ticket: { validation_url: service.url("/ticket"), auth_fields: ["user_id", "org"] },
    },
    services: {
      chat: {
        extra_fields: ["room_role"],
        presence: { fields: ["org"] },
        before_unsubscribe: service.url("/before_unsubscribe"),
        on_unsubscribe: service.url("/on_unsubscribe"),
      },
      plain: { require_authentication: false },
    },
    publish_api: { secret: SECRET },
    delivery: { metadata: false },
    ...more,
  };
}

function ticketService(): TestService {
  return new TestService({
    "/ticket": (call) => ({ status: "ok", ...JSON.parse(call.body.ticket as string) }),
  });
}

async function member(
  shark: TestShark,
  authInfo: Json,
  extra: Json = {},
): Promise<{ client: TestClient; id: string }> {
  const client = await shark.connect();
  await client.auth(JSON.stringify(authInfo));
  const reply = await client.subscribe(ROOM, extra);
  return { client, id: reply.client as string };
}

/** POSTs `body` (JSON unless a string) to `path` with the secret (or `authorization`). */
async function post(
  shark: TestShark,
  path: string,
  body: unknown,
  authorization: string | null = `Bearer ${SECRET}`,
): Promise<{ status: number; body: Json }> {
  const headers: HeadersInit = authorization === null ? {} : { authorization };
  const response = await fetch(shark.url(path), {
    method: "POST",
    headers,
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

const PATHS = ["/presence", "/disconnect", "/unsubscribe"];

Deno.test("the server API is authorized exactly like /publish: 404 without a secret, 401 without the right one, 405 for GET", async () => {
  await using service = ticketService();
  {
    await using shark = await TestShark.start(config(service, { publish_api: { secret: null } }));
    for (const path of [...PATHS, "/publish"]) {
      assert.deepEqual(await post(shark, path, { subscription: ROOM }), {
        status: 404,
        body: { status: "error", error: "Not found." },
      }, path);
    }
  }
  await using shark = await TestShark.start(config(service));
  const { client } = await member(shark, { user_id: "u1" });
  for (const path of [...PATHS, "/publish"]) {
    for (const authorization of [null, "Bearer wrong-secret-of-enough-length", SECRET]) {
      const response = await post(shark, path, { client: "x", match: undefined }, authorization);
      assert.deepEqual(response, {
        status: 401,
        body: { status: "error", error: "Bad or missing bearer secret." },
      }, `${path} ${authorization}`);
    }
    // The scheme word is matched case-insensitively, as for /publish.
    const lower = await post(shark, path, {}, `bearer ${SECRET}`);
    assert.notEqual(lower.status, 401, path);
    const get = await fetch(shark.url(path), { headers: { authorization: `Bearer ${SECRET}` } });
    assert.equal(get.status, 405);
    await get.body?.cancel();
  }
  await client.pingPong("untouched");
});

Deno.test("POST /presence answers the members, clients and users; 400 for a bad name, an unknown service or one without presence", async () => {
  await using service = ticketService();
  await using shark = await TestShark.start(config(service));
  const alice = await member(shark, { user_id: "u1", org: { id: 1 } });
  const bob = await member(shark, { user_id: "u2" });
  const response = await post(shark, "/presence", { subscription: ROOM });
  assert.equal(response.status, 200);
  const members = (response.body.members as Json[]).sort((a, b) =>
    String(a.user).localeCompare(String(b.user))
  );
  assert.deepEqual({ ...response.body, members }, {
    status: "ok",
    members: [
      { client: alice.id, user: "u1", info: { org: { id: 1 } } },
      { client: bob.id, user: "u2", info: {} },
    ],
    clients: 2,
    users: 2,
  });
  assert.deepEqual((await post(shark, "/presence", { subscription: "chat.empty" })).body, {
    status: "ok",
    members: [],
    clients: 0,
    users: 0,
  });
  const bad: [unknown, string][] = [
    [{}, "Invalid subscription format."],
    [{ subscription: "" }, "Invalid subscription format."],
    [{ subscription: "chat" }, "Invalid subscription format."],
    [{ subscription: 5 }, "Invalid subscription format."],
    [{ subscription: "nope.room" }, "Invalid service."],
    [{ subscription: "plain.room" }, "Presence not enabled."],
    [[ROOM], "Body must be a JSON object."],
    ["not json", "Body is not JSON."],
  ];
  for (const [body, error] of bad) {
    assert.deepEqual(await post(shark, "/presence", body), {
      status: 400,
      body: { status: "error", error },
    }, JSON.stringify(body));
  }
  assert.deepEqual(await shark.shark.presence(ROOM), {
    members: response.body.members,
    clients: 2,
    users: 2,
  });
  await assert.rejects(
    shark.shark.presence("plain.room"),
    (error) => error instanceof ServerApiError && error.status === 400,
  );
  const metrics = shark.shark.metrics.snapshot();
  assert.equal(metrics["serverApiCommands.presence.ok"], 3);
  // A body that is not JSON is refused before it is a command.
  assert.equal(metrics["serverApiCommands.presence.invalid"], 8);
});

Deno.test("POST /presence answers 503 Service unavailable. when the store cannot be read", async () => {
  class Broken extends MemoryPubSub {
    override readonly presence = new (class extends MemoryPresence {
      override read(): Promise<never> {
        return Promise.reject(new Error("store down"));
      }
    })(() => {});
  }
  await using service = ticketService();
  await using shark = await TestShark.start(config(service), { pubsub: new Broken() });
  assert.deepEqual(await post(shark, "/presence", { subscription: ROOM }), {
    status: 503,
    body: { status: "error", error: "Service unavailable." },
  });
});

Deno.test("POST /disconnect by client closes that connection with 4003 disconnected, after the usual unsubscribe callbacks; others see its leave", async () => {
  await using service = ticketService();
  await using shark = await TestShark.start(config(service));
  const alice = await member(shark, { user_id: "u1" });
  const bob = await member(shark, { user_id: "u2" });
  await alice.client.next(); // bob's join
  assert.deepEqual(await post(shark, "/disconnect", { client: bob.id }), {
    status: 200,
    body: { status: "ok" },
  });
  const closed = await bob.client.closed;
  assert.deepEqual([closed.code, closed.reason], [4003, "disconnected"]);
  assert.equal(CloseReason.disconnected.reconnect, false);
  const leave = await alice.client.next();
  assert.deepEqual([leave.event, (leave.member as Json).client], ["leave", bob.id]);
  await service.waitFor("/on_unsubscribe");
  assert.deepEqual(service.bodies("/before_unsubscribe").map((body) => body.user_id), ["u2"]);
  await alice.client.pingPong("still connected");
  assert.deepEqual(await alice.client.sentSoFar(), []);
  const metrics = shark.shark.metrics.snapshot();
  assert.equal(metrics["serverApiEnded.connections"], 1);
  assert.equal(metrics["closed.disconnected"], 1);
});

Deno.test("POST /disconnect by match with reconnect closes every matching connection with 4004 'disconnected, reconnect'", async () => {
  await using service = ticketService();
  await using shark = await TestShark.start(config(service));
  const org = { id: 7, name: "Acme" };
  const first = await member(shark, { user_id: "u1", org });
  const second = await shark.connect();
  await second.auth(JSON.stringify({ user_id: "u1", org: { name: "Acme", id: 7 } }));
  const other = await member(shark, { user_id: "u1", org: { id: 8 } });
  const anonymous = await shark.connect();
  const response = await post(shark, "/disconnect", {
    match: { user_id: "u1", org: { name: "Acme", id: 7 } },
    reconnect: true,
  });
  assert.equal(response.status, 200);
  for (const client of [first.client, second]) {
    const closed = await client.closed;
    assert.deepEqual([closed.code, closed.reason], [4004, "disconnected, reconnect"]);
  }
  assert.equal(CloseReason.disconnectedReconnect.reconnect, true);
  const leave = await other.client.next();
  assert.deepEqual([leave.event, (leave.member as Json).client], ["leave", first.id]);
  await other.client.pingPong("not matching: another org");
  await anonymous.pingPong("not matching: no auth info");
  assert.equal(shark.shark.metrics.snapshot()["serverApiEnded.connections"], 2);
});

Deno.test("an invalid /disconnect or /unsubscribe body is refused with 400 and does nothing", async () => {
  await using service = ticketService();
  await using shark = await TestShark.start(config(service));
  const alice = await member(shark, { user_id: "u1" });
  const target = { client: alice.id };
  const bad: [string, unknown, string][] = [
    ["/disconnect", { match: {} }, '"match" must be a non-empty object.'],
    ["/disconnect", { match: [1] }, '"match" must be a non-empty object.'],
    ["/disconnect", { match: null }, '"match" must be a non-empty object.'],
    ["/disconnect", { client: "" }, '"client" must be a non-empty string.'],
    ["/disconnect", { client: 5 }, '"client" must be a non-empty string.'],
    [
      "/disconnect",
      { client: alice.id, match: { user_id: "u1" } },
      'Give exactly one of "client" or "match".',
    ],
    ["/disconnect", {}, 'Give exactly one of "client" or "match".'],
    ["/disconnect", { ...target, reconnect: "yes" }, '"reconnect" must be a boolean.'],
    ["/disconnect", [target], "Body must be a JSON object."],
    ["/unsubscribe", target, "Invalid subscription format."],
    ["/unsubscribe", { ...target, subscription: "" }, "Invalid subscription format."],
    ["/unsubscribe", { ...target, subscription: "chat." }, "Invalid subscription format."],
    ["/unsubscribe", { ...target, subscription: ["chat.room"] }, "Invalid subscription format."],
    ["/unsubscribe", { ...target, subscription: "nope.room" }, "Invalid service."],
    ["/unsubscribe", { subscription: ROOM, match: {} }, '"match" must be a non-empty object.'],
    ["/unsubscribe", { subscription: ROOM }, 'Give exactly one of "client" or "match".'],
  ];
  for (const [path, body, error] of bad) {
    assert.deepEqual(await post(shark, path, body), {
      status: 400,
      body: { status: "error", error },
    }, `${path} ${JSON.stringify(body)}`);
  }
  await assert.rejects(
    shark.shark.disconnect({ match: {} }),
    (error) => error instanceof ServerApiError && error.status === 400,
  );
  await alice.client.pingPong("nothing was done");
  assert.deepEqual(await alice.client.sentSoFar(), []);
  assert.equal(service.bodies("/before_unsubscribe").length, 0);
  assert.equal(shark.shark.metrics.snapshot()["serverApiCommands.disconnect.invalid"], 10);
});

Deno.test("POST /unsubscribe ends the subscription of each matching session holding it, as a failed re-authorization does", async () => {
  await using service = ticketService();
  service.answer("/before_unsubscribe", { status: "ok", data: { why: "moderated" } });
  await using shark = await TestShark.start(config(service));
  const alice = await member(shark, { user_id: "u1" });
  const bob = await member(shark, { user_id: "u2" }, { room_role: "guest" });
  await alice.client.next(); // bob's join
  // Connected, not holding the subscription: untouched.
  const bobElsewhere = await shark.connect();
  await bobElsewhere.auth(JSON.stringify({ user_id: "u2" }));
  assert.deepEqual(
    await post(shark, "/unsubscribe", { subscription: ROOM, match: { user_id: "u2" } }),
    { status: 200, body: { status: "ok" } },
  );
  assert.deepEqual(await bob.client.next(), {
    event: "unsubscribe",
    subscription: ROOM,
    data: { why: "moderated" },
    error: "Unsubscribed.",
    room_role: "guest",
  });
  const leave = await alice.client.next();
  assert.deepEqual([leave.event, (leave.member as Json).client], ["leave", bob.id]);
  await service.waitFor("/on_unsubscribe");
  assert.deepEqual(service.paths().filter((path) => path !== "/ticket"), [
    "/before_unsubscribe",
    "/on_unsubscribe",
  ]);
  // The connection stays; the subscription is gone.
  assert.deepEqual(
    await bob.client.request({ event: "presence", subscription: ROOM }),
    {
      event: "presence",
      status: "error",
      error: "Subscription does not exist.",
      subscription: ROOM,
    },
  );
  await bobElsewhere.pingPong("untouched");
  assert.deepEqual(await alice.client.sentSoFar(), []);
  // Through the engine's method, by client id: the same.
  await shark.shark.unsubscribe({ subscription: ROOM, client: alice.id });
  assert.equal((await alice.client.next()).error, "Unsubscribed.");
  assert.equal(shark.shark.metrics.snapshot()["serverApiEnded.subscriptions"], 2);
});

Deno.test("a command published on the control topic, as another node does, runs here; anything else there is dropped and counted", async () => {
  await using service = ticketService();
  await using shark = await TestShark.start(config(service));
  const alice = await member(shark, { user_id: "u1" });
  const pubsub = shark.shark.pubsub;
  await pubsub.publish("shark:control", "not a command");
  await pubsub.publish("shark:control", '{"command":"disconnect","match":{}}');
  await alice.client.pingPong("still here");
  await pubsub.publish(
    "shark:control",
    JSON.stringify({ command: "disconnect", client: alice.id }),
  );
  assert.equal((await alice.client.closed).code, 4003);
  const metrics = shark.shark.metrics.snapshot();
  assert.equal(metrics["serverApiCommands.control.malformed"], 2);
  assert.equal(metrics["serverApiCommands.disconnect.received"], 1);
});

Deno.test("a command the adapter refuses is answered 503 and counted", async () => {
  class Refusing extends MemoryPubSub {
    override publish(topic: string, payload: string): Promise<void> {
      if (topic === "shark:control") return Promise.reject(new Error("backend down"));
      return super.publish(topic, payload);
    }
  }
  await using service = ticketService();
  await using shark = await TestShark.start(config(service), { pubsub: new Refusing() });
  assert.deepEqual(await post(shark, "/disconnect", { client: "someone" }), {
    status: 503,
    body: { status: "error", error: "Pub/sub unavailable." },
  });
  assert.equal(shark.shark.metrics.snapshot()["serverApiCommands.disconnect.unavailable"], 1);
});
