/**
 * The client SDK with JWT authentication (SPEC section 11) against a real
 * in-process Shark: the `auth` hook is called again before the token's
 * `exp` and the fresh token replaces the session's auth info on the open
 * connection; without a fresh token Shark closes with 4001 and the client
 * reconnects with a new one.
 */
import assert from "node:assert/strict";
import type { AuthContext } from "../client.ts";
import { Recorder, testClient } from "./helpers/client_app.ts";
import { hmacKey, signToken, type TestKey } from "./helpers/jwt.ts";
import { TestService } from "./helpers/service.ts";
import { TestShark } from "./helpers/shark.ts";
import { delay, waitUntil } from "./helpers/wait.ts";

const SECRET = "the identity provider's HMAC secret, 32 bytes or more";

function jwtConfig(service: TestService) {
  return {
    authentication: { jwt: { secret: SECRET, leeway: 1, auth_fields: ["sub"] } },
    services: {
      books: {
        before_subscribe: service.url("/before_subscribe"),
        on_message: service.url("/on_message"),
      },
    },
  };
}

/** Tokens that live `seconds`, each with the next subject: u1, u2, ... */
function tokens(key: TestKey, seconds: number) {
  let issued = 0;
  return async () => {
    const iat = Math.floor(Date.now() / 1000);
    const token = await signToken(key, { sub: `u${++issued}`, iat, exp: iat + seconds });
    return { method: "jwt" as const, token };
  };
}

Deno.test("JWT: the auth hook runs again before exp and the fresh token goes out on the open connection, which outlives several tokens", async () => {
  await using service = new TestService();
  service.answer("/on_message", ({ body }) => ({ status: "ok", data: body.sub as string }));
  await using node = await TestShark.start(jwtConfig(service));
  const issue = tokens(await hmacKey("HS256", SECRET), 2);
  const reasons: AuthContext["reason"][] = [];
  await using client = testClient(node.wsUrl, {
    auth: (context) => {
      reasons.push(context.reason);
      return issue();
    },
  });
  const events = new Recorder(client);
  const book = client.subscribe("books.b1");
  await book.ready;
  // Three token lifetimes (2 s each, plus Shark's 1 s leeway) on one connection.
  await delay(5000);
  assert.equal(events.of("disconnected").length, 0);
  assert.equal(events.of("error").length, 0);
  assert.equal(reasons[0], "connect");
  assert.ok(reasons.length >= 4, `${reasons.length} tokens`);
  assert.ok(reasons.slice(1).every((reason) => reason === "refresh"));
  assert.equal(await book.request({}), `u${reasons.length}`, "auth info of the latest token");
});

Deno.test("JWT: no fresh token before exp (the hook fails) → Shark closes with 4001 and the client reconnects with a new token and its subscriptions", async () => {
  await using service = new TestService();
  await using node = await TestShark.start(jwtConfig(service));
  const issue = tokens(await hmacKey("HS256", SECRET), 1);
  await using client = testClient(node.wsUrl, {
    auth: ({ reason }) => {
      if (reason === "refresh") throw new Error("identity provider unreachable");
      return issue();
    },
    backoff: { min: 50, max: 50 },
  });
  const events = new Recorder(client);
  const resubscribed: boolean[] = [];
  const book = client.subscribe("books.b1", {
    onSubscribed: (_, again) => resubscribed.push(again),
  });
  await book.ready;
  const [expired] = await events.wait("disconnected", 1, 10_000);
  assert.equal(expired.detail.code, 4001);
  assert.equal(expired.detail.reason, "token expired");
  assert.equal(expired.detail.reconnect, true);
  assert.equal(events.of("error")[0].detail.error.message, "identity provider unreachable");
  await waitUntil(() => resubscribed.length === 2, 5000, "subscribed again");
  assert.deepEqual(resubscribed, [false, true]);
  assert.deepEqual(
    service.bodies("/before_subscribe").map((body) => body.sub),
    ["u1", "u2"],
  );
});

Deno.test("JWT: a token that lives longer than a timer can wait (40 days) is refreshed once, not in a loop", async () => {
  await using service = new TestService();
  await using node = await TestShark.start(jwtConfig(service));
  const key = await hmacKey("HS256", SECRET);
  let calls = 0;
  await using client = testClient(node.wsUrl, {
    auth: async () => {
      calls++;
      const iat = Math.floor(Date.now() / 1000);
      return {
        method: "jwt",
        token: await signToken(key, { sub: "u", iat, exp: iat + 40 * 86400 }),
      };
    },
  });
  await client.subscribe("books.b1").ready;
  await delay(300);
  assert.equal(calls, 1);
});
