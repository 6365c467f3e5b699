/**
 * SPEC section 11 end to end: `{"event":"auth","method":"jwt"}` against an
 * in-process Shark, tokens signed in the test with WebCrypto, a real HTTP
 * service receiving the callbacks, a JWKS endpoint on loopback, and the 4001
 * close when a token expires without a replacement.
 */
import assert from "node:assert/strict";
import { getLogger, type Logger } from "@logtape/logtape";
import { Shark, type SharkConfigInput } from "../mod.ts";
import { TestClient } from "./helpers/client.ts";
import {
  base64url,
  hmacKey,
  JwksServer,
  makeKey,
  publicJwk,
  publicPem,
  signToken,
  type TestKey,
} from "./helpers/jwt.ts";
import { TestService } from "./helpers/service.ts";
import { TestShark } from "./helpers/shark.ts";

const SECRET = "the identity provider's HMAC secret, 32 bytes or more";
const ISSUER = "https://id.example";

const seconds = () => Date.now() / 1000;
const ok = { event: "auth", status: "ok" };
const failed = { event: "auth", status: "error", error: "Authentication failed." };

function jwtAuth(token: unknown): Record<string, unknown> {
  return { event: "auth", method: "jwt", token };
}

function hsConfig(extra: Record<string, unknown> = {}): SharkConfigInput {
  return { authentication: { jwt: { secret: SECRET, ...extra } } } as SharkConfigInput;
}

/** The close event, or a failure when the connection is still open after `ms`. */
async function closedWithin(client: TestClient, ms: number): Promise<CloseEvent> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still open after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([client.closed, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function ping(client: TestClient): Promise<void> {
  assert.deepEqual(await client.request({ event: "ping", data: "p" }), {
    event: "pong",
    data: "p",
  });
}

Deno.test("HS256, RS256, ES256 and EdDSA tokens are accepted with their secret, PEM key or JWKS", async () => {
  await using jwks = new JwksServer();
  const [rsa, ec, ed] = [await makeKey("RS256"), await makeKey("ES256"), await makeKey("EdDSA")];
  jwks.serve([await publicJwk(ed, { kid: "ed" })]);
  const cases: [TestKey, Record<string, unknown>, Record<string, unknown>][] = [
    [await hmacKey("HS256", SECRET), { secret: SECRET, algorithms: ["HS256"] }, {}],
    [rsa, { public_key: await publicPem(rsa), algorithms: ["RS256"] }, {}],
    [ec, { public_key: await publicPem(ec), algorithms: ["ES256"] }, {}],
    [ed, { jwks_url: jwks.url, algorithms: ["EdDSA"] }, { kid: "ed" }],
  ];
  for (const [key, jwt, header] of cases) {
    {
      await using shark = await TestShark.start({ authentication: { jwt } } as SharkConfigInput);
      const client = await shark.connect();
      const token = await signToken(key, { sub: "u1", exp: seconds() + 60 }, header);
      assert.deepEqual(await client.request(jwtAuth(token)), ok, key.alg);
      assert.equal(shark.shark.metrics.snapshot()["auth.jwt.ok"], 1);
      await client.close();
    }
  }
});

Deno.test("every rejection reason answers only 'Authentication failed.', and the session stays unauthenticated", async () => {
  const hs256 = await hmacKey("HS256", SECRET);
  const good = { sub: "u1", iss: ISSUER, aud: ["other", "shark"] };
  const now = seconds();
  const refused: [string, string][] = [
    ["bad signature", await signToken(await hmacKey("HS256", "x".repeat(40)), good)],
    ["algorithm not listed", await signToken(await hmacKey("HS512", SECRET), good)],
    ["alg none", `${base64url('{"alg":"none"}')}.${base64url(JSON.stringify(good))}.`],
    ["exp passed beyond leeway", await signToken(hs256, { ...good, exp: now - 10 })],
    ["nbf in the future beyond leeway", await signToken(hs256, { ...good, nbf: now + 60 })],
    ["wrong iss", await signToken(hs256, { ...good, iss: "https://evil.example" })],
    ["no iss", await signToken(hs256, { sub: "u1", aud: "shark" })],
    ["wrong aud", await signToken(hs256, { ...good, aud: "other" })],
    ["public-key algorithm", await signToken(await makeKey("ES256"), good)],
    ["malformed: one part", "not-a-token"],
    ["malformed: not base64url JSON", "a.b.c"],
    ["malformed: not a string", 42 as unknown as string],
  ];
  const config = hsConfig({ issuer: ISSUER, audience: "shark", leeway: 5 });
  {
    await using shark = await TestShark.start({ ...config, services: { books: {} } });
    const client = await shark.connect();
    for (const [reason, token] of refused) {
      assert.deepEqual(await client.request(jwtAuth(token)), failed, reason);
    }
    assert.deepEqual(await client.request({ event: "subscribe", subscription: "books.1" }), {
      event: "subscribe",
      subscription: "books.1",
      status: "error",
      error: "Authentication required.",
    });
    // Within the leeway on both sides, the same claims are accepted.
    const skewed = await signToken(hs256, { ...good, exp: now - 2, nbf: now + 2 });
    assert.deepEqual(await client.request(jwtAuth(skewed)), ok);
    const counts = shark.shark.metrics.snapshot();
    assert.equal(counts["auth.jwt.failed"], refused.length);
    assert.equal(counts["auth.jwt.ok"], 1);
    await client.close();
  }
});

Deno.test("a missing or empty token is 'Must specify token.'; jwt without authentication.jwt is unsupported", async () => {
  const needsToken = { event: "auth", status: "error", error: "Must specify token." };
  {
    await using shark = await TestShark.start(hsConfig());
    const client = await shark.connect();
    for (const request of [{}, { token: "" }, { token: null }]) {
      assert.deepEqual(
        await client.request({ event: "auth", method: "jwt", ...request }),
        needsToken,
      );
    }
    // The ticket method is not configured here.
    assert.deepEqual(await client.request({ event: "auth", ticket: "t" }), {
      event: "auth",
      status: "error",
      error: "Authentication method unsupported.",
    });
    await client.close();
  }
  const token = await signToken(await hmacKey("HS256", SECRET), { sub: "u1" });
  for (const authentication of [{}, { ticket: { validation_url: "http://127.0.0.1:9/" } }]) {
    {
      await using shark = await TestShark.start({ authentication });
      const client = await shark.connect();
      assert.deepEqual(await client.request(jwtAuth(token)), {
        event: "auth",
        status: "error",
        error: "Authentication method unsupported.",
      });
      assert.equal(shark.shark.metrics.snapshot()["auth.jwt.unsupported"], 1);
      await client.close();
    }
  }
});

Deno.test("auth info is the token's auth_fields claims, in callback bodies and filter fields", async () => {
  const service = new TestService();
  try {
    const config: SharkConfigInput = {
      ...hsConfig({ auth_fields: ["sub", "org", "absent"] }),
      services: {
        books: {
          filter_fields: ["sub"],
          before_subscribe: service.url("/before_subscribe"),
          on_subscribe: service.url("/on_subscribe"),
        },
      },
    };
    {
      await using shark = await TestShark.start(config);
      const client = await shark.connect();
      const claims = { sub: "u1", org: "o1", role: "admin", exp: seconds() + 60 };
      const token = await signToken(await hmacKey("HS256", SECRET), claims);
      assert.deepEqual(await client.request(jwtAuth(token)), ok);
      await client.request({ event: "subscribe", subscription: "books.1" });
      await service.waitFor("/on_subscribe");
      assert.deepEqual(service.bodies("/before_subscribe"), [
        { subscription: "books.1", sub: "u1", org: "o1" },
      ]);
      assert.deepEqual(service.bodies("/on_subscribe"), [
        { subscription: "books.1", sub: "u1", org: "o1" },
      ]);
      await shark.publish({ subscription: "books.1", data: "for u2", sub: "u2" });
      await shark.publish({ subscription: "books.1", data: "for u1", sub: "u1" });
      const message = await client.next();
      assert.equal(message.data, "for u1");
      await client.close();
    }
  } finally {
    await service.close();
  }
});

Deno.test("JWKS: a token signed with a key rotated in after the first fetch is accepted", async () => {
  await using jwks = new JwksServer();
  const [k1, k2, k3] = [await makeKey("ES256"), await makeKey("ES256"), await makeKey("ES256")];
  jwks.serve([await publicJwk(k1, { kid: "k1" })]);
  const config = {
    authentication: { jwt: { jwks_url: jwks.url, algorithms: ["ES256"] } },
  } as SharkConfigInput;
  {
    await using shark = await TestShark.start(config);
    const client = await shark.connect();
    const claims = { sub: "u1", exp: seconds() + 60 };
    assert.equal(jwks.requests, 0, "nothing is fetched before a token needs it");
    assert.deepEqual(await client.request(jwtAuth(await signToken(k1, claims, { kid: "k1" }))), ok);
    jwks.serve([await publicJwk(k1, { kid: "k1" }), await publicJwk(k2, { kid: "k2" })]);
    assert.deepEqual(await client.request(jwtAuth(await signToken(k2, claims, { kid: "k2" }))), ok);
    assert.equal(jwks.requests, 2);
    assert.deepEqual(
      await client.request(jwtAuth(await signToken(k3, claims, { kid: "k3" }))),
      failed,
    );
    assert.equal(jwks.requests, 2, "another unknown kid within 30 s is not fetched");
    assert.deepEqual(await client.request(jwtAuth(await signToken(k1, claims, { kid: "k1" }))), ok);
    await client.close();
  }
});

Deno.test("an expired token closes the connection with 4001 after the unsubscribe callbacks", async () => {
  const service = new TestService();
  try {
    const config: SharkConfigInput = {
      ...hsConfig({ leeway: 1 }),
      services: {
        books: {
          before_unsubscribe: service.url("/before_unsubscribe"),
          on_unsubscribe: service.url("/on_unsubscribe"),
        },
      },
    };
    {
      await using shark = await TestShark.start(config);
      const client = await shark.connect();
      const exp = seconds() + 1;
      const token = await signToken(await hmacKey("HS256", SECRET), { sub: "u1", exp });
      assert.deepEqual(await client.request(jwtAuth(token)), ok);
      await client.request({ event: "subscribe", subscription: "books.1" });
      await client.request({ event: "subscribe", subscription: "books.2" });
      const close = await closedWithin(client, 10_000);
      const closedAt = performance.now();
      const closedAtSeconds = seconds();
      assert.equal(close.code, 4001);
      assert.equal(close.reason, "token expired");
      assert.ok(closedAtSeconds >= exp + 1 - 0.05, `closed ${exp + 1 - closedAtSeconds} s early`);
      const callbacks = service.calls.map((call) => [call.path, call.body.subscription]);
      assert.deepEqual(callbacks.toSorted(), [
        ["/before_unsubscribe", "books.1"],
        ["/before_unsubscribe", "books.2"],
        ["/on_unsubscribe", "books.1"],
        ["/on_unsubscribe", "books.2"],
      ]);
      for (const call of service.calls) assert.ok(call.at < closedAt, `${call.path} after close`);
      assert.equal(shark.shark.metrics.snapshot()["closed.token_expired"], 1);
    }
  } finally {
    await service.close();
  }
});

Deno.test("a new auth before exp keeps the connection; a failed one does not replace the deadline", async () => {
  const hs256 = await hmacKey("HS256", SECRET);
  const ticketService = new TestService({ "/ticket": { status: "ok", user_id: "u1" } });
  try {
    const config = {
      authentication: {
        jwt: { secret: SECRET, leeway: 0 },
        ticket: { validation_url: ticketService.url("/ticket") },
      },
    } as SharkConfigInput;
    {
      await using shark = await TestShark.start(config);
      const [refreshed, ticket, noExp, refusedRefresh, unrefreshed] = await Promise.all(
        Array.from({ length: 5 }, () => shark.connect()),
      );
      const exp = seconds() + 2;
      const first = await signToken(hs256, { sub: "u1", exp });
      for (const client of [refreshed, ticket, noExp, refusedRefresh, unrefreshed]) {
        assert.deepEqual(await client.request(jwtAuth(first)), ok);
      }
      const later = await signToken(hs256, { sub: "u1", exp: exp + 60 });
      assert.deepEqual(await refreshed.request(jwtAuth(later)), ok);
      assert.deepEqual(await ticket.request({ event: "auth", ticket: "t" }), ok);
      assert.deepEqual(await noExp.request(jwtAuth(await signToken(hs256, { sub: "u1" }))), ok);
      const expired = await signToken(hs256, { sub: "u1", exp: seconds() - 1 });
      assert.deepEqual(await refusedRefresh.request(jwtAuth(expired)), failed);

      assert.equal((await closedWithin(unrefreshed, 10_000)).code, 4001);
      assert.equal((await closedWithin(refusedRefresh, 10_000)).code, 4001);
      // Well past the first token's exp: the others are still served.
      await new Promise((resolve) =>
        setTimeout(resolve, Math.max(0, (exp - seconds()) * 1000) + 1000)
      );
      for (const client of [refreshed, ticket, noExp]) await ping(client);
      await Promise.all([refreshed, ticket, noExp].map((client) => client.close()));
    }
  } finally {
    await ticketService.close();
  }
});

interface LogLine {
  readonly message: string;
  readonly properties: Record<string, unknown>;
}

/** A logger that records its info lines, with the properties its contexts added. */
function recording(
  logger: Logger,
  lines: LogLine[],
  context: Record<string, unknown> = {},
): Logger {
  return new Proxy(logger, {
    get(target, property) {
      if (property === "info") {
        return (message: string, properties: Record<string, unknown> = {}) =>
          lines.push({ message, properties: { ...context, ...properties } });
      }
      if (property === "with") {
        return (properties: Record<string, unknown>) =>
          recording(target.with(properties), lines, { ...context, ...properties });
      }
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

Deno.test("why a token was refused is logged with the session id, and never sent", async () => {
  const lines: LogLine[] = [];
  const shark = new Shark(hsConfig(), { logger: recording(getLogger(["shark-test"]), lines) });
  await shark.started;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => shark.handle(request),
  );
  try {
    const client = await TestClient.connect(`ws://127.0.0.1:${server.addr.port}/`);
    const forged = await signToken(await hmacKey("HS256", "y".repeat(40)), { sub: "admin" });
    const reply = await client.request(jwtAuth(forged));
    assert.deepEqual(reply, failed);
    assert.doesNotMatch(JSON.stringify(reply), /signature/);
    const refusal = lines.find((line) => line.message.startsWith("JWT refused"));
    assert.ok(refusal, JSON.stringify(lines));
    assert.equal(refusal.properties.reason, "bad signature");
    assert.equal(typeof refusal.properties.session, "string");
    await client.close();
  } finally {
    await shark.shutdown();
    await server.shutdown();
  }
});
