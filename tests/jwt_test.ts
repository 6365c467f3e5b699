/**
 * SPEC section 11, the verification half: tokens signed in the test with
 * WebCrypto, every rejection reason, PEM keys and a JWKS endpoint with key
 * rotation. The clock is injected, so expiry and the JWKS refetch interval
 * need no waiting.
 */
import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "../mod.ts";
import { JWKS_MAX_AGE_MS, JWKS_REFETCH_INTERVAL_MS } from "../src/auth/jwks.ts";
import { JWT_ALGORITHMS, type JwtAlgorithm } from "../src/auth/jws.ts";
import { type JwtOptions, type JwtResult, JwtVerifier, MAX_TOKEN_LENGTH } from "../src/auth/jwt.ts";
import { PemError, readPublicKey } from "../src/auth/pem.ts";
import {
  base64url,
  hmacKey,
  JwksServer,
  makeKey,
  pem,
  publicJwk,
  publicPem,
  sameKeyFor,
  signToken,
  type TestKey,
} from "./helpers/jwt.ts";

const SECRET = "a shared secret of at least thirty-two bytes";
/** The test clock's start, in seconds; the verifiers read `clock.now`. */
const T0 = 1_900_000_000;

class Clock {
  ms = T0 * 1000;
  readonly now = (): number => this.ms;
  advance(seconds: number): void {
    this.ms += seconds * 1000;
  }
}

function verifier(options: Partial<JwtOptions>, clock = new Clock()): JwtVerifier {
  return new JwtVerifier({ algorithms: ["HS256"], leeway: 5, ...options }, { now: clock.now });
}

function accepted(result: JwtResult): Record<string, unknown> {
  assert.ok(result.ok, `expected the token to be accepted, got: ${!result.ok && result.reason}`);
  return result.claims;
}

function refused(result: JwtResult, reason: RegExp): void {
  assert.ok(!result.ok, "expected the token to be refused");
  assert.match(result.reason, reason);
}

// Two RSA keys for the whole file, made by the first test that needs them:
// generating one takes about a second.
let rsa: Promise<TestKey> | undefined;
let otherRsa: Promise<TestKey> | undefined;
const rsaKey = () => rsa ??= makeKey("RS256");
const otherRsaKey = () => otherRsa ??= makeKey("RS256");

/** An EC P-521 public key (openssl ecparam -name secp521r1); Deno 2.5 cannot export one. */
const P521_PEM = `-----BEGIN PUBLIC KEY-----
MIGbMBAGByqGSM49AgEGBSuBBAAjA4GGAAQATpzMexYZmIDHC8RBfQ5IH22oiFcb
hYDbVA0cEGBWI269dhTz5xiFw1LSv17OnSyIi20+7LM6nvcqoyrmdyonUTgAaXF5
cY5YkHDQFU5NpWe3PHGEuEyyltq69Drcf30RJBSs1LpC6TI+Ph6/vFEYFnaTVHcQ
G82mIt/iEbBGDnX5MeE=
-----END PUBLIC KEY-----`;
const hs256 = hmacKey("HS256", SECRET);

async function keyFor(alg: JwtAlgorithm): Promise<TestKey> {
  if (alg.startsWith("HS")) return await hmacKey(alg as "HS256", SECRET);
  if (alg.startsWith("RS") || alg.startsWith("PS")) return await sameKeyFor(await rsaKey(), alg);
  return await makeKey(alg);
}

Deno.test("a token of every supported algorithm verifies with its secret or PEM public key", async () => {
  for (const alg of JWT_ALGORITHMS) {
    const key = await keyFor(alg);
    const source = alg.startsWith("HS") ? { secret: SECRET } : { public_key: await publicPem(key) };
    const token = await signToken(key, { sub: "u1", exp: T0 + 60 });
    const claims = accepted(await verifier({ ...source, algorithms: [alg] }).verify(token));
    assert.deepEqual(claims, { sub: "u1", exp: T0 + 60 }, alg);
  }
});

Deno.test("a token signed with another key fails with a bad signature, for every kind of key", async () => {
  for (const alg of ["HS256", "RS256", "PS256", "ES256", "ES384", "EdDSA"] as const) {
    const key = await keyFor(alg);
    const otherKey = alg === "RS256" || alg === "PS256"
      ? sameKeyFor(await otherRsaKey(), alg)
      : makeKey(alg);
    const other = alg.startsWith("HS")
      ? { secret: "another secret" }
      : { public_key: await publicPem(await otherKey) };
    const token = await signToken(key, { sub: "u1" });
    refused(await verifier({ ...other, algorithms: [alg] }).verify(token), /bad signature/);
  }
});

Deno.test("a changed payload or header fails with a bad signature", async () => {
  const token = await signToken(await hs256, { sub: "u1" });
  const [header, , signature] = token.split(".");
  const forged = `${header}.${base64url(JSON.stringify({ sub: "admin" }))}.${signature}`;
  refused(await verifier({ secret: SECRET }).verify(forged), /bad signature/);
  const reheadered = `${base64url('{"alg":"HS256","kid":"x"}')}.${
    token.split(".")[1]
  }.${signature}`;
  refused(await verifier({ secret: SECRET }).verify(reheadered), /bad signature/);
  refused(
    await verifier({ secret: SECRET }).verify(`${header}.${token.split(".")[1]}.`),
    /bad signature/,
  );
});

Deno.test("an algorithm not listed is refused, even with the right key", async () => {
  const token = await signToken(await hmacKey("HS384", SECRET), { sub: "u1" });
  refused(
    await verifier({ secret: SECRET, algorithms: ["HS256"] }).verify(token),
    /HS384 is not allowed/,
  );
  const es = await makeKey("ES256");
  const esToken = await signToken(es, { sub: "u1" });
  const options = { public_key: await publicPem(es), algorithms: ["ES384"] as JwtAlgorithm[] };
  refused(await verifier(options).verify(esToken), /ES256 is not allowed/);
});

Deno.test("alg none is never accepted, even when listed, in any spelling", async () => {
  const claims = base64url(JSON.stringify({ sub: "u1" }));
  const algorithms = ["none", "HS256"] as unknown as JwtAlgorithm[];
  for (const alg of ["none", "None", "NONE"]) {
    const token = `${base64url(JSON.stringify({ alg, typ: "JWT" }))}.${claims}.`;
    refused(await verifier({ secret: SECRET, algorithms }).verify(token), /alg none/);
  }
});

Deno.test("algorithm confusion: a secret never verifies a public-key token, a public key never an HMAC one", async () => {
  const rsa = await rsaKey();
  const pemText = await publicPem(rsa);
  // The classic attack: HMAC-sign with the server's public key text as the secret.
  const forged = await signToken(await hmacKey("HS256", pemText), { sub: "admin" });
  const both = ["RS256", "HS256"] as JwtAlgorithm[];
  refused(
    await verifier({ public_key: pemText, algorithms: both }).verify(forged),
    /HS256 does not fit the configured rsa key/,
  );
  const rsToken = await signToken(rsa, { sub: "u1" });
  refused(
    await verifier({ secret: pemText, algorithms: both }).verify(rsToken),
    /RS256 does not fit the configured hmac key/,
  );
  const ed = await makeKey("EdDSA");
  const esToken = await signToken(await makeKey("ES256"), { sub: "u1" });
  const edPem = await publicPem(ed);
  refused(
    await verifier({ public_key: edPem, algorithms: ["ES256", "EdDSA"] }).verify(esToken),
    /ES256 does not fit the configured ed25519 key/,
  );
  await using jwks = new JwksServer();
  jwks.serve([{ kty: "oct", k: base64url(pemText), kid: "k" }, await publicJwk(rsa, { kid: "k" })]);
  refused(
    await verifier({ jwks_url: jwks.url, algorithms: both }).verify(forged),
    /HS256 needs a secret, not a key from a JWKS/,
  );
});

Deno.test("exp: accepted until exp + leeway, refused from then on", async () => {
  const clock = new Clock();
  const check = verifier({ secret: SECRET, leeway: 5 }, clock);
  const token = await signToken(await hs256, { exp: T0 });
  const result = await check.verify(token);
  assert.ok(result.ok && result.expiresAt === (T0 + 5) * 1000);
  clock.advance(4.999);
  accepted(await check.verify(token));
  clock.advance(0.001);
  refused(await check.verify(token), /expired/);
  const noLeeway = verifier({ secret: SECRET, leeway: 0 }, new Clock());
  refused(await noLeeway.verify(token), /expired/);
});

Deno.test("nbf: refused while more than leeway in the future, accepted within it", async () => {
  const clock = new Clock();
  const check = verifier({ secret: SECRET, leeway: 5 }, clock);
  const token = await signToken(await hs256, { nbf: T0 + 6 });
  refused(await check.verify(token), /not valid before/);
  clock.advance(1);
  accepted(await check.verify(token));
  const exact = await signToken(await hs256, { nbf: T0 });
  accepted(await verifier({ secret: SECRET, leeway: 0 }).verify(exact));
});

Deno.test("exp and nbf that are not numbers are refused; a token without exp never expires", async () => {
  for (const claims of [{ exp: String(T0 + 60) }, { nbf: null }, { exp: [T0] }]) {
    refused(
      await verifier({ secret: SECRET }).verify(await signToken(await hs256, claims)),
      /is not a number/,
    );
  }
  const result = await verifier({ secret: SECRET }).verify(
    await signToken(await hs256, { sub: "u" }),
  );
  assert.ok(result.ok && result.expiresAt === undefined);
});

Deno.test("iss must equal the configured issuer", async () => {
  const check = verifier({ secret: SECRET, issuer: "https://id.example" });
  accepted(await check.verify(await signToken(await hs256, { iss: "https://id.example" })));
  for (const claims of [{ iss: "https://evil.example" }, {}, { iss: ["https://id.example"] }]) {
    refused(await check.verify(await signToken(await hs256, claims)), /issuer/);
  }
  accepted(await verifier({ secret: SECRET }).verify(await signToken(await hs256, { iss: "any" })));
});

Deno.test("aud may be a string or an array; one of them must be a configured audience", async () => {
  const check = verifier({ secret: SECRET, audience: "shark" });
  for (const aud of ["shark", ["other", "shark"]]) {
    accepted(await check.verify(await signToken(await hs256, { aud })));
  }
  for (const claims of [{ aud: "other" }, { aud: ["a", "b"] }, {}, { aud: [] }, { aud: 7 }]) {
    refused(await check.verify(await signToken(await hs256, claims)), /audience/);
  }
  const either = verifier({ secret: SECRET, audience: ["shark", "api"] });
  accepted(await either.verify(await signToken(await hs256, { aud: "api" })));
});

Deno.test("malformed tokens are refused with the reason, never thrown", async () => {
  const good = await signToken(await hs256, { sub: "u1" });
  const [header, payload, signature] = good.split(".");
  const bad: [unknown, RegExp][] = [
    [undefined, /not a string/],
    [42, /not a string/],
    ["", /1 parts instead of 3/],
    [`${header}.${payload}`, /2 parts/],
    [`${good}.${signature}`, /4 parts/],
    [`${header}=.${payload}.${signature}`, /header is not base64url/],
    [`${header}.${payload}.${signature}+`, /signature is not base64url/],
    [`${header} .${payload}.${signature}`, /header is not base64url/],
    [`${header}.${payload}.a`, /signature is not base64url/],
    [`${base64url("{alg:HS256}")}.${payload}.${signature}`, /header is not JSON/],
    [`${base64url('["HS256"]')}.${payload}.${signature}`, /header is not a JSON object/],
    [`${base64url(new Uint8Array([0xff, 0xfe]))}.${payload}.${signature}`, /header is not JSON/],
    [`${base64url('{"typ":"JWT"}')}.${payload}.${signature}`, /no alg/],
    [`${base64url('{"alg":"HS256","kid":7}')}.${payload}.${signature}`, /kid is not a string/],
    [`${base64url('{"alg":"HS256","crit":["b64"]}')}.${payload}.${signature}`, /critical/],
    [`${"a".repeat(MAX_TOKEN_LENGTH)}.b.c`, /longer than/],
  ];
  const check = verifier({ secret: SECRET });
  for (const [token, reason] of bad) refused(await check.verify(token), reason);
  const key = await hs256;
  for (const body of ["123", '"text"', "[1]", "{"]) {
    const input = `${header}.${base64url(body)}`;
    const mac = await crypto.subtle.sign("HMAC", key.signing, new TextEncoder().encode(input));
    const token = `${input}.${base64url(new Uint8Array(mac))}`;
    refused(await check.verify(token), /malformed token: payload is not/);
  }
});

Deno.test("an ECDSA signature in DER form instead of JWS raw r||s is a bad signature", async () => {
  const es = await makeKey("ES256");
  const token = await signToken(es, { sub: "u1" });
  const [header, payload, signature] = token.split(".");
  const raw = Uint8Array.from(
    atob(signature.replaceAll("-", "+").replaceAll("_", "/")),
    (c) => c.charCodeAt(0),
  );
  const integer = (bytes: Uint8Array) => [0x02, bytes.length + 1, 0, ...bytes];
  const body = [...integer(raw.subarray(0, 32)), ...integer(raw.subarray(32))];
  const der = base64url(new Uint8Array([0x30, body.length, ...body]));
  const check = verifier({ public_key: await publicPem(es), algorithms: ["ES256"] });
  accepted(await check.verify(token));
  refused(await check.verify(`${header}.${payload}.${der}`), /bad signature/);
});

Deno.test("RSA keys below 2048 bits are refused", async () => {
  const small = await makeKey("RS256", 1024);
  const token = await signToken(small, { sub: "u1" });
  const check = verifier({ public_key: await publicPem(small), algorithms: ["RS256"] });
  refused(await check.verify(token), /1024 bits is below 2048/);
  assert.equal(readPublicKey(await publicPem(small)).bits, 1024);
});

Deno.test("a PKCS#1 'BEGIN RSA PUBLIC KEY' is read as the same key as its SPKI form", async () => {
  const rsa = await rsaKey();
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", rsa.public));
  // A 2048-bit RSA SPKI is this fixed prefix followed by the PKCS#1 RSAPublicKey.
  const prefix = "30820122300d06092a864886f70d0101010500038201" + "0f00";
  assert.equal(
    Array.from(spki.subarray(0, 24), (b) => b.toString(16).padStart(2, "0")).join(""),
    prefix,
  );
  const pkcs1 = pem("RSA PUBLIC KEY", spki.subarray(24));
  const info = readPublicKey(pkcs1);
  assert.deepEqual([info.kind, info.bits], ["rsa", 2048]);
  assert.deepEqual(info.spki, spki);
  const check = verifier({ public_key: pkcs1, algorithms: ["RS256"] });
  accepted(await check.verify(await signToken(rsa, { sub: "u1" })));
});

Deno.test("PEM text that is not a usable public key is refused with what it is", async () => {
  const ec = await makeKey("ES256");
  const privatePem = pem("PRIVATE KEY", await crypto.subtle.exportKey("pkcs8", ec.signing));
  const ecPem = await publicPem(ec);
  const cases: [string, RegExp][] = [
    [privatePem, /private key/],
    [pem("EC PRIVATE KEY", new Uint8Array(8)), /private key/],
    [pem("CERTIFICATE", new Uint8Array(8)), /certificate: give its public key/],
    [P521_PEM, /an EC P-521 key: ES512 is not supported/],
    [ecPem + ecPem, /one PEM block, found several/],
    ["/etc/shark/key.pem", /expected PEM text/],
    ["-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----", /not valid base64/],
    ["-----BEGIN PUBLIC KEY-----\nMAA=\n-----END RSA PUBLIC KEY-----", /ends with END/],
    [pem("PUBLIC KEY", new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x00])), /not a public key/],
    [pem("PUBLIC KEY", new Uint8Array([0x30, 0x85, 1, 1, 1, 1, 1])), /DER length/],
    [pem("PUBLIC KEY", new Uint8Array([0x30, 0x10])), /truncated/],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => readPublicKey(text), (error: unknown) => {
      assert.ok(error instanceof PemError, String(error));
      assert.match(error.message, message);
      return true;
    });
  }
  assert.equal(readPublicKey(ecPem).kind, "ec-p256");
  assert.equal(readPublicKey(await publicPem(await makeKey("ES384"))).kind, "ec-p384");
  assert.equal(readPublicKey(await publicPem(await makeKey("EdDSA"))).kind, "ed25519");
});

Deno.test("JWKS: keys are picked by kid; a new kid after rotation is fetched, unknown kids at most every 30 s", async () => {
  await using jwks = new JwksServer();
  const clock = new Clock();
  const [k1, k2, k3] = [await makeKey("ES256"), await makeKey("ES256"), await makeKey("ES256")];
  jwks.serve([await publicJwk(k1, { kid: "k1", use: "sig", alg: "ES256" })]);
  const check = verifier({ jwks_url: jwks.url, algorithms: ["ES256"] }, clock);
  accepted(await check.verify(await signToken(k1, { sub: "a" }, { kid: "k1" })));
  accepted(await check.verify(await signToken(k1, { sub: "b" }, { kid: "k1" })));
  assert.equal(jwks.requests, 1, "known keys are cached");

  // A rotation right after the first load is picked up: that load is no refetch.
  jwks.serve([await publicJwk(k1, { kid: "k1" }), await publicJwk(k2, { kid: "k2" })]);
  accepted(await check.verify(await signToken(k2, { sub: "c" }, { kid: "k2" })));
  assert.equal(jwks.requests, 2, "an unknown kid fetches the set again");

  jwks.serve([await publicJwk(k2, { kid: "k2" }), await publicJwk(k3, { kid: "k3" })]);
  clock.advance(JWKS_REFETCH_INTERVAL_MS / 1000 - 0.001);
  refused(await check.verify(await signToken(k3, { sub: "d" }, { kid: "k3" })), /kid "k3"/);
  refused(await check.verify(await signToken(k3, { sub: "e" }, { kid: "k4" })), /kid "k4"/);
  assert.equal(jwks.requests, 2, "unknown kids within 30 s of the last refetch do not fetch");
  accepted(await check.verify(await signToken(k1, { sub: "f" }, { kid: "k1" })));
  clock.advance(0.001);
  accepted(await check.verify(await signToken(k3, { sub: "g" }, { kid: "k3" })));
  assert.equal(jwks.requests, 3, "30 s after the last refetch an unknown kid fetches again");
  refused(await check.verify(await signToken(k1, { sub: "h" }, { kid: "k1" })), /kid "k1"/);
  assert.equal(jwks.requests, 3, "a key removed from the set no longer verifies");
});

Deno.test("JWKS: concurrent verifications on a cold cache share one fetch", async () => {
  await using jwks = new JwksServer();
  const key = await makeKey("EdDSA");
  jwks.serve([await publicJwk(key, { kid: "ed" })]);
  const check = verifier({ jwks_url: jwks.url, algorithms: ["EdDSA"] });
  const token = await signToken(key, { sub: "u" }, { kid: "ed" });
  const results = await Promise.all(Array.from({ length: 10 }, () => check.verify(token)));
  for (const result of results) accepted(result);
  assert.equal(jwks.requests, 1);
});

Deno.test("JWKS: keys whose kty, crv, alg, use or key_ops do not fit are skipped", async () => {
  await using jwks = new JwksServer();
  const [es256, es384, ed] = [
    await makeKey("ES256"),
    await makeKey("ES384"),
    await makeKey("EdDSA"),
  ];
  const misfits = [
    await publicJwk(es256, { kid: "enc", use: "enc" }),
    await publicJwk(es256, { kid: "ops", key_ops: ["encrypt"] }),
    await publicJwk(es256, { kid: "alg", alg: "ES384" }),
    await publicJwk(es256, { kid: "badalg", alg: "none" }),
    await publicJwk(es384, { kid: "curve" }),
    await publicJwk(ed, { kid: "okp" }),
    { kty: "oct", k: base64url(SECRET), kid: "oct" },
    { kty: "EC", crv: "P-256", x: 1, y: 2, kid: "numbers" },
    { kty: "EC", crv: "P-256", kid: "nocoords" },
    "not an object",
  ];
  jwks.serve([...misfits, await publicJwk(es256, { kid: "good", key_ops: ["verify"] })]);
  const check = verifier({ jwks_url: jwks.url, algorithms: ["ES256", "EdDSA", "HS256"] });
  for (const kid of ["enc", "ops", "alg", "badalg", "curve", "oct", "numbers", "nocoords"]) {
    refused(await check.verify(await signToken(es256, { sub: kid }, { kid })), /no JWKS key/);
  }
  accepted(await check.verify(await signToken(ed, { sub: "okp" }, { kid: "okp" })));
  accepted(await check.verify(await signToken(es256, { sub: "good" }, { kid: "good" })));
  assert.equal(jwks.requests, 2, "the load, and one refetch for the first unknown kid");
});

Deno.test("JWKS: a token without kid uses the only fitting key, and is refused when several fit", async () => {
  await using jwks = new JwksServer();
  const [a, b, ed] = [await makeKey("ES256"), await makeKey("ES256"), await makeKey("EdDSA")];
  jwks.serve([await publicJwk(a, { kid: "a" }), await publicJwk(ed, { kid: "ed" })]);
  const clock = new Clock();
  const check = verifier({ jwks_url: jwks.url, algorithms: ["ES256"] }, clock);
  accepted(await check.verify(await signToken(a, { sub: "u" })));
  jwks.serve([await publicJwk(a, { kid: "a" }), await publicJwk(b, { kid: "b" })]);
  clock.advance(JWKS_MAX_AGE_MS / 1000);
  refused(
    await check.verify(await signToken(a, { sub: "u" })),
    /2 JWKS keys fit ES256 with no kid/,
  );
});

Deno.test("JWKS: a failing endpoint makes tokens fail with the reason, and keys already fetched stay in use", async () => {
  await using jwks = new JwksServer();
  const key = await makeKey("ES256");
  const token = await signToken(key, { sub: "u" }, { kid: "k" });
  const clock = new Clock();
  const check = verifier({ jwks_url: jwks.url, algorithms: ["ES256"] }, clock);
  const failures: [JwksServer["answer"], RegExp][] = [
    [() => new Response("oops", { status: 500 }), /HTTP status 500/],
    [() => new Response("not json"), /SyntaxError/],
    [() => Response.json({ keys: "none" }), /no keys array/],
    [() => new Response("x".repeat(300 * 1024)), /exceeds/],
  ];
  for (const [answer, reason] of failures) {
    jwks.answer = answer;
    refused(await check.verify(token), reason);
    refused(await check.verify(token), reason);
    clock.advance(JWKS_REFETCH_INTERVAL_MS / 1000);
  }
  assert.equal(jwks.requests, failures.length, "a failed fetch is not tried again within 30 s");

  jwks.serve([await publicJwk(key, { kid: "k" })]);
  accepted(await check.verify(token));
  jwks.answer = () => new Response("down", { status: 503 });
  clock.advance(JWKS_MAX_AGE_MS / 1000);
  accepted(await check.verify(token));
  assert.equal(
    jwks.requests,
    failures.length + 2,
    "stale keys were refreshed, and kept on failure",
  );
});

Deno.test("JWKS: an endpoint that does not answer in time fails the token, and close aborts a fetch", async () => {
  await using jwks = new JwksServer();
  const release = Promise.withResolvers<void>();
  jwks.answer = async () => {
    await release.promise;
    return Response.json({ keys: [] });
  };
  const key = await makeKey("ES256");
  const token = await signToken(key, { sub: "u" }, { kid: "k" });
  const slow = new JwtVerifier({ jwks_url: jwks.url, algorithms: ["ES256"], leeway: 5 }, {
    timeoutMs: 100,
  });
  refused(await slow.verify(token), /TimeoutError/);
  const closing = new JwtVerifier({ jwks_url: jwks.url, algorithms: ["ES256"], leeway: 5 });
  const pending = closing.verify(token);
  while (jwks.requests < 2) await new Promise((resolve) => setTimeout(resolve, 5));
  closing.close();
  refused(await pending, /AbortError/);
  release.resolve();
});

Deno.test("JWKS: RS, PS and EdDSA keys verify by kid beside each other", async () => {
  await using jwks = new JwksServer();
  const rsa = await rsaKey();
  const ps = await sameKeyFor(rsa, "PS256");
  const ed = await makeKey("EdDSA");
  jwks.serve([
    await publicJwk(rsa, { kid: "rsa" }),
    await publicJwk(ed, { kid: "ed", alg: "EdDSA" }),
  ]);
  const check = verifier({ jwks_url: jwks.url, algorithms: ["RS256", "PS256", "EdDSA"] });
  accepted(await check.verify(await signToken(rsa, { sub: "r" }, { kid: "rsa" })));
  accepted(await check.verify(await signToken(ps, { sub: "p" }, { kid: "rsa" })));
  accepted(await check.verify(await signToken(ed, { sub: "e" }, { kid: "ed" })));
  refused(await check.verify(await signToken(ed, { sub: "e" }, { kid: "rsa" })), /no JWKS key/);
});

function jwtProblems(jwt: unknown, env: Record<string, string> = {}): readonly string[] {
  try {
    loadConfig({ authentication: { jwt } }, (name) => env[name]);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.problems;
  }
  assert.fail("the configuration was accepted");
}

Deno.test("config: authentication.jwt takes the defaults of SPEC section 11 and is absent by default", async () => {
  assert.deepEqual(loadConfig({}).authentication, {});
  assert.equal(loadConfig({ authentication: { jwt: null } }).authentication.jwt, null);
  const jwt =
    loadConfig({ authentication: { jwt: { secret: { env: "JWT_SECRET" } } } }, () => SECRET)
      .authentication.jwt;
  assert.deepEqual(jwt, {
    secret: SECRET,
    public_key: null,
    jwks_url: null,
    algorithms: ["HS256"],
    issuer: null,
    audience: null,
    leeway: 5,
    auth_fields: ["sub"],
  });
  const pemText = await publicPem(await makeKey("EdDSA"));
  const fromEnv = loadConfig(
    { authentication: { jwt: { public_key: { env: "PEM" }, algorithms: ["EdDSA"] } } },
    () => pemText,
  );
  assert.equal(fromEnv.authentication.jwt?.public_key, pemText);
});

Deno.test("config: exactly one of secret, public_key, jwks_url, else an error naming the key", () => {
  assert.deepEqual(jwtProblems({}), [
    "authentication.jwt: set one of secret, public_key, jwks_url",
  ]);
  assert.deepEqual(jwtProblems({ secret: SECRET, jwks_url: "https://id.example/jwks" }), [
    "authentication.jwt.jwks_url: only one of secret, public_key, jwks_url may be set " +
    "(secret, jwks_url are)",
  ]);
});

Deno.test("config: algorithms must be listed, known, never none, and fit the key", async () => {
  const none = jwtProblems({ secret: SECRET, algorithms: ["HS256", "none", "NONE"] });
  assert.deepEqual(none, [
    "authentication.jwt.algorithms.1: none is never accepted: tokens must be signed",
    "authentication.jwt.algorithms.2: none is never accepted: tokens must be signed",
  ]);
  assert.match(jwtProblems({ secret: SECRET, algorithms: ["HS257"] })[0], /expected one of HS256/);
  assert.match(jwtProblems({ secret: SECRET, algorithms: [] })[0], /list at least one algorithm/);
  assert.deepEqual(jwtProblems({ secret: SECRET, algorithms: ["HS256", "RS256"] }), [
    "authentication.jwt.algorithms: RS256 needs a public_key or jwks_url, not a secret",
  ]);
  const rsaPem = await publicPem(await rsaKey());
  assert.deepEqual(jwtProblems({ public_key: rsaPem, algorithms: ["RS256", "ES256", "HS256"] }), [
    "authentication.jwt.algorithms: ES256 needs an EC P-256 key, and public_key is an RSA key",
    "authentication.jwt.algorithms: HS256 needs a secret",
  ]);
  assert.deepEqual(jwtProblems({ jwks_url: "https://id.example/jwks", algorithms: ["HS512"] }), [
    "authentication.jwt.algorithms: HS512 needs a secret",
  ]);
  const accepted = loadConfig({
    authentication: { jwt: { public_key: rsaPem, algorithms: ["RS256", "RS512", "PS256"] } },
  });
  assert.deepEqual(accepted.authentication.jwt?.algorithms, ["RS256", "RS512", "PS256"]);
});

Deno.test("config: an HMAC secret shorter than the hash of a listed algorithm is refused", () => {
  assert.deepEqual(jwtProblems({ secret: "x".repeat(31) }), [
    "authentication.jwt.algorithms: HS256 needs a secret of at least 32 bytes",
  ]);
  assert.deepEqual(jwtProblems({ secret: "x".repeat(48), algorithms: ["HS384", "HS512"] }), [
    "authentication.jwt.algorithms: HS512 needs a secret of at least 64 bytes",
  ]);
  assert.deepEqual(jwtProblems({ secret: { env: "UNSET" } }), [
    "authentication.jwt.secret: environment variable UNSET is not set",
  ]);
});

Deno.test("config: public_key must be PEM text of a public key; jwks_url an http(s) URL without credentials", () => {
  assert.match(
    jwtProblems({ public_key: "/etc/shark/jwt.pem", algorithms: ["RS256"] })[0],
    /^authentication\.jwt\.public_key: expected PEM text .*a path is not read/,
  );
  assert.match(
    jwtProblems({ public_key: pem("PRIVATE KEY", new Uint8Array(4)), algorithms: ["RS256"] })[0],
    /^authentication\.jwt\.public_key: this is a private key/,
  );
  assert.match(
    jwtProblems({ public_key: P521_PEM, algorithms: ["ES256"] })[0],
    /^authentication\.jwt\.public_key: an EC P-521 key/,
  );
  assert.match(
    jwtProblems({ jwks_url: "file:///etc/jwks.json", algorithms: ["RS256"] })[0],
    /^authentication\.jwt\.jwks_url: expected an http/,
  );
  assert.deepEqual(
    jwtProblems({ jwks_url: "https://u:p@id.example/jwks", algorithms: ["RS256"] }),
    [
      "authentication.jwt.jwks_url: credentials in the URL are not supported",
    ],
  );
});
