/**
 * Tokens made in the test with WebCrypto, as an identity provider would sign
 * them, and a JWKS endpoint on loopback whose keys the test rotates.
 *
 * @module
 */
import type { JwtAlgorithm } from "../../src/auth/jws.ts";

/** How WebCrypto generates keys for and signs with each JWS algorithm. */
const SIGNING: Record<JwtAlgorithm, { key: Algorithm; sign: Algorithm }> = {
  HS256: hmacAlg("SHA-256"),
  HS384: hmacAlg("SHA-384"),
  HS512: hmacAlg("SHA-512"),
  RS256: rsaAlg("RSASSA-PKCS1-v1_5", "SHA-256"),
  RS384: rsaAlg("RSASSA-PKCS1-v1_5", "SHA-384"),
  RS512: rsaAlg("RSASSA-PKCS1-v1_5", "SHA-512"),
  PS256: rsaAlg("RSA-PSS", "SHA-256", { saltLength: 32 }),
  ES256: ecAlg("P-256", "SHA-256"),
  ES384: ecAlg("P-384", "SHA-384"),
  EdDSA: { key: { name: "Ed25519" }, sign: { name: "Ed25519" } },
};

function hmacAlg(hash: string) {
  return { key: { name: "HMAC", hash } as Algorithm, sign: { name: "HMAC" } };
}

function rsaAlg(name: string, hash: string, sign: object = {}, modulusLength = 2048) {
  const key = { name, hash, modulusLength, publicExponent: new Uint8Array([1, 0, 1]) };
  return { key: key as Algorithm, sign: { name, ...sign } as Algorithm };
}

function ecAlg(namedCurve: string, hash: string) {
  return { key: { name: "ECDSA", namedCurve } as Algorithm, sign: { name: "ECDSA", hash } };
}

/** A signing key and, for asymmetric algorithms, its public half. */
export interface TestKey {
  readonly alg: JwtAlgorithm;
  readonly signing: CryptoKey;
  readonly public: CryptoKey;
}

/** A fresh key for `alg`; `rsaBits` makes a smaller RSA key for the size rule. */
export async function makeKey(alg: JwtAlgorithm, rsaBits = 2048): Promise<TestKey> {
  let params = SIGNING[alg].key;
  if ("modulusLength" in params) params = { ...params, modulusLength: rsaBits } as Algorithm;
  const key = await crypto.subtle.generateKey(params, true, ["sign", "verify"]);
  if (key instanceof CryptoKey) return { alg, signing: key, public: key };
  return { alg, signing: key.privateKey, public: key.publicKey };
}

/**
 * The same RSA key pair for another RSA algorithm: generating a 2048-bit key
 * takes about a second on a busy machine, re-importing it a millisecond.
 */
export async function sameKeyFor(key: TestKey, alg: JwtAlgorithm): Promise<TestKey> {
  const params = SIGNING[alg].key;
  const [signing, publicKey] = await Promise.all([
    crypto.subtle.exportKey("pkcs8", key.signing)
      .then((der) => crypto.subtle.importKey("pkcs8", der, params, true, ["sign"])),
    crypto.subtle.exportKey("spki", key.public)
      .then((der) => crypto.subtle.importKey("spki", der, params, true, ["verify"])),
  ]);
  return { alg, signing, public: publicKey };
}

/** An HMAC key made from a secret string, as Shark imports `secret`. */
export async function hmacKey(alg: "HS256" | "HS384" | "HS512", secret: string): Promise<TestKey> {
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    SIGNING[alg].key,
    false,
    ["sign"],
  );
  return { alg, signing: key, public: key };
}

/** base64url without padding, as JWS writes every part. */
export function base64url(data: Uint8Array | string): string {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replace(/=+$/, "");
}

/**
 * A compact JWS of `claims` signed with `key`; `header` adds to (or
 * overrides) `{"alg", "typ"}`.
 */
export async function signToken(
  key: TestKey,
  claims: Record<string, unknown>,
  header: Record<string, unknown> = {},
): Promise<string> {
  const input = `${base64url(JSON.stringify({ alg: key.alg, typ: "JWT", ...header }))}.${
    base64url(JSON.stringify(claims))
  }`;
  const signature = await crypto.subtle.sign(
    SIGNING[key.alg].sign,
    key.signing,
    new TextEncoder().encode(input),
  );
  return `${input}.${base64url(new Uint8Array(signature))}`;
}

/** PEM text around DER bytes. */
export function pem(label: string, der: ArrayBuffer | Uint8Array): string {
  const body = btoa(String.fromCharCode(...new Uint8Array(der))).match(/.{1,64}/g)!.join("\n");
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}

/** The public key as `BEGIN PUBLIC KEY` PEM (SPKI). */
export async function publicPem(key: TestKey): Promise<string> {
  return pem("PUBLIC KEY", await crypto.subtle.exportKey("spki", key.public));
}

/** The public key as a JWK with `kid` and any other members given. */
export async function publicJwk(
  key: TestKey,
  members: Record<string, unknown> = {},
): Promise<Record<string, unknown>> {
  const { kty, n, e, crv, x, y } = await crypto.subtle.exportKey("jwk", key.public);
  return JSON.parse(JSON.stringify({ kty, n, e, crv, x, y, ...members }));
}

/** A JWKS endpoint on loopback: serves what the test sets, counts requests. */
export class JwksServer {
  /** What `GET /jwks` answers: a key set, or a full `Response`. */
  answer: Record<string, unknown> | (() => Response | Promise<Response>) = { keys: [] };
  requests = 0;
  readonly #server: Deno.HttpServer<Deno.NetAddr>;

  constructor() {
    this.#server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
      this.requests++;
      const answer = this.answer;
      return typeof answer === "function" ? answer() : Response.json(answer);
    });
  }

  /** Serves these keys from now on. */
  serve(keys: unknown[]): void {
    this.answer = { keys };
  }

  get url(): string {
    return `http://127.0.0.1:${this.#server.addr.port}/jwks`;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#server.shutdown();
  }
}
