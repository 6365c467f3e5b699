/**
 * The client SDK with JWT authentication (SPEC section 11) against a real
 * in-process Shark: the `auth` hook is called again before the token's
 * `exp` and the fresh token replaces the session's auth info on the open
 * connection; without a fresh token Shark closes with 4001 and the client
 * reconnects with a new one.
 *
 * When the refresh comes is tested on a fake clock (the client's `clock`
 * option), to the millisecond of test time; Shark checks each token's `exp`
 * against its own, real clock, which the fake one starts from. Two tests
 * run on real time, with windows of seconds: a connection that outlives its
 * first token, and the 4001 reconnect.
 */
import assert from "node:assert/strict";
import type { AuthContext, Credentials } from "../client.ts";
import { MAX_TIMER } from "../client/clock.ts";
import { Recorder, testClient } from "./helpers/client_app.ts";
import { FakeClock } from "./helpers/clock.ts";
import { hmacKey, signToken, type TestKey } from "./helpers/jwt.ts";
import { TestService } from "./helpers/service.ts";
import { TestShark } from "./helpers/shark.ts";
import { waitUntil } from "./helpers/wait.ts";

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

/** Shark, and a service whose `on_message` answers with the session's `sub`. */
async function start() {
  const service = new TestService();
  service.answer("/on_message", ({ body }) => ({ status: "ok", data: body.sub as string }));
  const node = await TestShark.start(jwtConfig(service));
  return {
    service,
    node,
    async [Symbol.asyncDispose]() {
      await node[Symbol.asyncDispose]();
      await service[Symbol.asyncDispose]();
    },
  };
}

/** An `auth` hook that issues tokens, and what it was asked and gave. */
type Issuer = ((context: AuthContext) => Promise<Credentials>) & {
  /** Why the hook ran, call by call. */
  readonly reasons: AuthContext["reason"][];
  /** The `exp` of each token issued. */
  readonly exps: (number | undefined)[];
};

/**
 * An `auth` hook whose tokens are issued at `now()` (ms), the n-th living
 * `lives[n]` seconds (the last one repeats; `null`: no `exp`), each with the
 * next subject: u1, u2, ...
 */
function issuer(
  key: TestKey,
  lives: (number | null)[],
  now: () => number = Date.now,
): Issuer {
  const reasons: AuthContext["reason"][] = [];
  const exps: (number | undefined)[] = [];
  const issue = async ({ reason }: AuthContext): Promise<Credentials> => {
    reasons.push(reason);
    const iat = Math.floor(now() / 1000);
    const life = lives[Math.min(exps.length, lives.length - 1)];
    const exp = life === null ? undefined : iat + life;
    exps.push(exp);
    const claims = { sub: `u${exps.length}`, iat, ...(exp === undefined ? {} : { exp }) };
    return { method: "jwt", token: await signToken(key, claims) };
  };
  return Object.assign(issue, { reasons, exps });
}

/** A fake clock at Shark's time, to the whole second, moved by `offset` ms. */
function clockAtNow(offset = 0): FakeClock {
  const clock = new FakeClock();
  clock.tick(Math.floor(Date.now() / 1000) * 1000 + offset);
  return clock;
}

/**
 * Waits until Shark accepted the latest token: without pings, the refresh
 * timer is then the clock's only one.
 */
function refreshArmed(clock: FakeClock): Promise<unknown> {
  return waitUntil(() => clock.pending === 1, 5000, "the next refresh armed");
}

Deno.test("JWT on a fake clock: the hook runs again refreshBefore ahead of exp, at most half the token's life ahead, and each fresh token goes out on the open connection", async () => {
  await using shark = await start();
  const clock = clockAtNow();
  const auth = issuer(await hmacKey("HS256", SECRET), [60, 60, 12], () => clock.now());
  const reasons = auth.reasons;
  await using client = testClient(shark.node.wsUrl, {
    auth,
    refreshBefore: 10_000,
    pingInterval: 0,
    clock,
  });
  const events = new Recorder(client);
  const book = client.subscribe("books.b1");
  await book.ready;
  await refreshArmed(clock);
  assert.equal(await book.request({}), "u1");
  // Two 60 s tokens: each refreshed 10 s (refreshBefore) before its exp, 50 s after it came.
  for (const n of [2, 3]) {
    clock.tick(49_999);
    assert.equal(reasons.length, n - 1, "not before 50 s");
    clock.tick(1);
    assert.equal(reasons.length, n, "at 50 s");
    await refreshArmed(clock);
    assert.equal(await book.request({}), `u${n}`, "the fresh token's auth info");
  }
  // A 12 s token: half its life (6 s) is less than refreshBefore.
  clock.tick(5_999);
  assert.equal(reasons.length, 3);
  clock.tick(1);
  assert.equal(reasons.length, 4);
  await refreshArmed(clock);
  assert.equal(await book.request({}), "u4");
  assert.deepEqual(reasons, ["connect", "refresh", "refresh", "refresh"]);
  assert.equal(events.of("connecting").length, 1, "one connection throughout");
  assert.equal(events.of("error").length, 0);
});

Deno.test("JWT on a fake clock: when the client's clock and the issuer's disagree (exp already past, or further than exp − iat), the token's own life counts", async () => {
  await using shark = await start();
  const key = await hmacKey("HS256", SECRET);
  for (const offset of [3_600_000, -3_600_000]) {
    const clock = clockAtNow(offset);
    // Dated by Shark's clock, so that Shark accepts them: 60 s from iat.
    const auth = issuer(key, [60]);
    await using client = testClient(shark.node.wsUrl, {
      auth,
      refreshBefore: 10_000,
      pingInterval: 0,
      clock,
    });
    await client.subscribe("books.b1").ready;
    await refreshArmed(clock);
    clock.tick(49_999);
    assert.equal(auth.reasons.length, 1, `clock ${offset} ms off: not before 50 s`);
    clock.tick(1);
    assert.equal(auth.reasons.length, 2, `clock ${offset} ms off: at 50 s`);
  }
});

Deno.test("JWT on a fake clock: a token that lives longer than a timer can wait (40 days) is refreshed once after the longest wait, not in a loop", async () => {
  await using shark = await start();
  const clock = clockAtNow();
  const auth = issuer(await hmacKey("HS256", SECRET), [40 * 86400], () => clock.now());
  await using client = testClient(shark.node.wsUrl, { auth, pingInterval: 0, clock });
  const book = client.subscribe("books.b1");
  await book.ready;
  await refreshArmed(clock);
  clock.tick(MAX_TIMER - 1);
  assert.equal(auth.reasons.length, 1);
  clock.tick(1);
  assert.equal(auth.reasons.length, 2);
  await refreshArmed(clock);
  assert.equal(await book.request({}), "u2");
});

Deno.test("JWT on a fake clock: a token without exp is never refreshed", async () => {
  await using shark = await start();
  const clock = clockAtNow();
  const auth = issuer(await hmacKey("HS256", SECRET), [null], () => clock.now());
  await using client = testClient(shark.node.wsUrl, { auth, pingInterval: 0, clock });
  const book = client.subscribe("books.b1");
  await book.ready;
  assert.equal(await book.request({}), "u1");
  assert.equal(clock.pending, 0, "no refresh timer");
  clock.tick(400 * 86_400_000);
  assert.deepEqual(auth.reasons, ["connect"]);
});

Deno.test("JWT on real time: the connection outlives its first token, Shark's deadline for it passing after the refresh", async () => {
  await using shark = await start();
  const auth = issuer(await hmacKey("HS256", SECRET), [3]);
  await using client = testClient(shark.node.wsUrl, { auth });
  const events = new Recorder(client);
  const book = client.subscribe("books.b1");
  await book.ready;
  // Shark closes a connection whose token expired at exp + leeway (1 s).
  await waitUntil(
    () => Date.now() > (auth.exps[0]! + 1) * 1000 + 500 && auth.reasons.length >= 2,
    20_000,
    "past the first token's deadline, refreshed",
  );
  // Answered after anything Shark did at the deadline: the connection is still up.
  assert.notEqual(await book.request({}), "u1", "auth info of a fresh token");
  assert.equal(events.of("connecting").length, 1);
  assert.equal(events.of("disconnected").length, 0);
  assert.equal(events.of("error").length, 0);
  assert.deepEqual(auth.reasons.slice(0, 2), ["connect", "refresh"]);
  assert.ok(auth.reasons.slice(1).every((reason) => reason === "refresh"));
});

Deno.test("JWT on real time: no fresh token before exp (the hook fails) → Shark closes with 4001 and the client reconnects with a new token and its subscriptions", async () => {
  await using shark = await start();
  const issue = issuer(await hmacKey("HS256", SECRET), [1]);
  await using client = testClient(shark.node.wsUrl, {
    auth: (context) => {
      if (context.reason === "refresh") throw new Error("identity provider unreachable");
      return issue(context);
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
    shark.service.bodies("/before_subscribe").map((body) => body.sub),
    ["u1", "u2"],
  );
});
