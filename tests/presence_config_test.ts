/**
 * SPEC section 12, the `presence` key of a service: its defaults, its range
 * checks, the names it may use (auth fields of a configured method, the
 * service's extra fields), the keys it reserves, and its refusal with the
 * `broadcast_channel` adapter, at load and at start.
 */
import assert from "node:assert/strict";
import { BroadcastChannelPubSub, loadConfig, Shark } from "../mod.ts";
import { runMain } from "./helpers/process.ts";
import { problems } from "./helpers/config.ts";

const TICKET = { validation_url: "http://auth/", auth_fields: ["user_id", "session_id", "name"] };

function withPresence(presence: unknown, service: Record<string, unknown> = {}) {
  return {
    authentication: { ticket: TICKET },
    services: { chat: { presence, ...service } },
  };
}

Deno.test("config: presence defaults to null; {} is fields [], user_field user_id, join_leave true, ttl 60", () => {
  assert.equal(loadConfig({ services: { chat: {} } }).services.chat.presence, null);
  assert.equal(loadConfig(withPresence(null)).services.chat.presence, null);
  assert.deepEqual(loadConfig({ services: { chat: { presence: {} } } }).services.chat.presence, {
    fields: [],
    user_field: "user_id",
    join_leave: true,
    ttl: 60,
  });
  const presence = { fields: ["name"], user_field: "name", join_leave: false, ttl: 5 };
  assert.deepEqual(loadConfig(withPresence(presence)).services.chat.presence, presence);
  assert.equal(loadConfig(withPresence({ ttl: 3600 })).services.chat.presence?.ttl, 3600);
});

Deno.test("config: presence ttl outside 5–3600, wrong types and unknown keys name the key", () => {
  const bad = [
    [{ ttl: 4.9 }, "ttl"],
    [{ ttl: 3601 }, "ttl"],
    [{ ttl: "60" }, "ttl"],
    [{ fields: "name" }, "fields"],
    [{ fields: [""] }, "fields"],
    [{ join_leave: 1 }, "join_leave"],
    [{ user_field: "" }, "user_field"],
    [{ who: true }, "who"],
  ] as const;
  for (const [value, key] of bad) {
    const [problem] = problems(withPresence(value));
    assert.match(problem, new RegExp(`^services\\.chat\\.presence\\.${key}[.:]`), problem);
  }
  assert.match(problems(withPresence(true))[0], /^services\.chat\.presence: /);
});

Deno.test("config: presence fields must be auth fields of a configured method or the service's extra fields", () => {
  assert.deepEqual(
    problems(withPresence({ fields: ["name", "room_role", "secret"] }, {
      extra_fields: ["room_role"],
    })),
    [
      'services.chat.presence.fields: "secret" is neither an auth field of a configured authentication method nor one of the service\'s extra_fields',
    ],
  );
  // No method configured: no auth field can be shown.
  assert.match(
    problems({ services: { chat: { presence: { fields: ["user_id"] } } } })[0],
    /^services\.chat\.presence\.fields: "user_id" is neither/,
  );
  // The jwt method's auth fields count as well.
  const jwt = { secret: "x".repeat(32), auth_fields: ["sub", "org"] };
  const config = loadConfig({
    authentication: { jwt },
    services: { chat: { presence: { fields: ["sub", "org"], user_field: "sub" } } },
  });
  assert.deepEqual(config.services.chat.presence?.fields, ["sub", "org"]);
});

Deno.test("config: an explicit user_field must be an auth field; the default user_id is not checked", () => {
  assert.deepEqual(
    problems(withPresence({ user_field: "room_role" }, { extra_fields: ["room_role"] })),
    [
      'services.chat.presence.user_field: "room_role" is not an auth field of a configured authentication method',
    ],
  );
  assert.match(
    problems({ services: { chat: { presence: { user_field: "user_id" } } } })[0],
    /^services\.chat\.presence\.user_field: "user_id" is not an auth field/,
  );
  assert.equal(
    loadConfig({ services: { chat: { presence: {} } } }).services.chat.presence?.user_field,
    "user_id",
  );
});

Deno.test("config: a presence service's extra_fields may not name client, member, members, clients or users", () => {
  for (const key of ["client", "member", "members", "clients", "users"]) {
    assert.deepEqual(problems({ services: { chat: { presence: {}, extra_fields: [key] } } }), [
      `services.chat.extra_fields: "${key}" is a key Shark writes into the subscription's frames`,
    ]);
    assert.deepEqual(
      loadConfig({ services: { chat: { extra_fields: [key] } } }).services.chat.extra_fields,
      [key],
      `${key} is free without presence`,
    );
  }
});

Deno.test("presence with the broadcast_channel adapter is rejected at start: exit 2 naming the key", async () => {
  const config = {
    pubsub: { adapter: "broadcast_channel" },
    services: { chat: { presence: {} }, news: {} },
  };
  const started = await runMain([], { SHARK_CONFIG: JSON.stringify(config) });
  assert.equal(started.code, 2);
  assert.match(
    started.stderr,
    /services\.chat\.presence: is not available with the broadcast_channel adapter/,
  );
  assert.doesNotMatch(started.stderr, /services\.news/);
});

Deno.test("an adapter that keeps no presence refuses to start a service with presence, naming the key", async () => {
  const pubsub = new BroadcastChannelPubSub({ name: `presence-test-${crypto.randomUUID()}` });
  const shark = new Shark({ services: { chat: { presence: {} } } }, { pubsub });
  await assert.rejects(
    shark.started,
    /services\.chat\.presence: the broadcast_channel adapter keeps no presence/,
  );
});

Deno.test("config: a loaded configuration loads again unchanged (the CLI hands one to Shark): the filled-in user_field is not taken as written", () => {
  const config = loadConfig({ services: { chat: { presence: { fields: [] } } } });
  assert.equal(loadConfig(config), config);
  assert.equal(config.services.chat.presence?.user_field, "user_id");
});
