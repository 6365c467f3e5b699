/**
 * JWT verification for `{"event":"auth","method":"jwt"}` (SPEC section 11),
 * with WebCrypto only: a compact JWS is parsed, its algorithm checked against
 * the allow-list and against the kind of key (an HMAC secret never verifies an
 * RSA/EC/Ed25519 token, a public key never an HMAC one), its signature
 * verified, then `exp`, `nbf`, `iss` and `aud` checked with leeway. A failure
 * carries a reason for the logs; clients are never told it.
 *
 * @module
 */
import { JwksKeys, type JwksOptions } from "./jwks.ts";
import {
  importKey,
  isJwtAlgorithm,
  type JwtAlgorithm,
  JwtFailure,
  type JwtHeader,
  keyKindOf,
  type KeySource,
  verifySignature,
} from "./jws.ts";
import { type KeyKind, readPublicKey } from "./pem.ts";
import { isObject, type JsonObject } from "../json.ts";

/** Tokens longer than this are refused before any decoding. */
export const MAX_TOKEN_LENGTH = 16 * 1024;

/** Imported keys by algorithm, for sources with one fixed key. */
class FixedKey implements KeySource {
  readonly #kind: KeyKind;
  readonly #import: (algorithm: JwtAlgorithm) => Promise<CryptoKey>;
  readonly #keys = new Map<JwtAlgorithm, Promise<CryptoKey>>();

  constructor(kind: KeyKind, load: (algorithm: JwtAlgorithm) => Promise<CryptoKey>) {
    this.#kind = kind;
    this.#import = load;
  }

  async key({ alg }: JwtHeader): Promise<CryptoKey> {
    if (keyKindOf(alg) !== this.#kind) {
      throw new JwtFailure(`algorithm ${alg} does not fit the configured ${this.#kind} key`);
    }
    let key = this.#keys.get(alg);
    if (!key) this.#keys.set(alg, key = this.#import(alg));
    return await key;
  }
}

/** What verifies tokens: one key source, the allow-list and the claim rules. */
export interface JwtOptions {
  /** HMAC secret (HS* algorithms). Exactly one of `secret`, `public_key`, `jwks_url`. */
  readonly secret?: string | null;
  /** PEM public key: SPKI (RSA, EC P-256/P-384, Ed25519) or PKCS#1 RSA. */
  readonly public_key?: string | null;
  /** URL of a JSON Web Key Set, fetched when first needed and on an unknown `kid`. */
  readonly jwks_url?: string | null;
  /** Accepted algorithms. */
  readonly algorithms: readonly JwtAlgorithm[];
  /** Required `iss`; `null` does not check it. */
  readonly issuer?: string | null;
  /** Required `aud` (one of them, when a list); `null` does not check it. */
  readonly audience?: string | readonly string[] | null;
  /** Seconds of clock skew allowed on `exp` and `nbf`. */
  readonly leeway: number;
}

/** Dependencies a test may replace: the clock and the JWKS fetch timeout. */
export type JwtVerifierOptions = JwksOptions;

/** A verified token. */
export interface VerifiedToken {
  readonly claims: JsonObject;
  /** When the token stops being accepted (`exp` + leeway), in epoch milliseconds; absent without `exp`. */
  readonly expiresAt?: number;
}

/** The outcome of {@link JwtVerifier.verify}. */
export type JwtResult =
  | ({ readonly ok: true } & VerifiedToken)
  | { readonly ok: false; readonly reason: string };

const BASE64URL = /^[A-Za-z0-9_-]*$/;
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
const ascii = new TextEncoder();

function decodeBase64Url(part: string, what: string): Uint8Array<ArrayBuffer> {
  if (!BASE64URL.test(part) || part.length % 4 === 1) {
    throw new JwtFailure(`malformed token: ${what} is not base64url`);
  }
  const binary = atob(part.replaceAll("-", "+").replaceAll("_", "/"));
  return Uint8Array.from(binary, (char) => char.charCodeAt(0));
}

function decodeJson(part: string, what: string): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(strictUtf8.decode(decodeBase64Url(part, what)));
  } catch (error) {
    if (error instanceof JwtFailure) throw error;
    throw new JwtFailure(`malformed token: ${what} is not JSON`);
  }
  if (!isObject(value)) throw new JwtFailure(`malformed token: ${what} is not a JSON object`);
  return value;
}

function readHeader(header: JsonObject, allowed: ReadonlySet<string>): JwtHeader {
  const { alg, kid } = header;
  if (typeof alg !== "string") throw new JwtFailure("malformed token: no alg in the header");
  if (alg.toLowerCase() === "none") throw new JwtFailure("unsigned token (alg none)");
  if (!allowed.has(alg)) throw new JwtFailure(`algorithm ${alg} is not allowed`);
  // RFC 7515 section 4.1.11: extensions marked critical must be understood; none are.
  if (header.crit !== undefined) throw new JwtFailure("token has critical header extensions");
  if (kid !== undefined && typeof kid !== "string") {
    throw new JwtFailure("malformed token: kid is not a string");
  }
  return { alg: alg as JwtAlgorithm, kid };
}

function numericDate(claims: JsonObject, name: string): number | undefined {
  const value = claims[name];
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new JwtFailure(`${name} is not a number`);
  }
  return value;
}

/**
 * Verifies JWTs against one configured key source.
 *
 * @example
 * ```ts
 * const verifier = new JwtVerifier({ secret: "s3cret", algorithms: ["HS256"], leeway: 5 });
 * const result = await verifier.verify(token);
 * if (result.ok) console.log(result.claims.sub);
 * ```
 */
export class JwtVerifier {
  readonly #options: JwtOptions;
  readonly #allowed: ReadonlySet<string>;
  readonly #now: () => number;
  readonly #keys: KeySource;

  constructor(options: JwtOptions, dependencies: JwtVerifierOptions = {}) {
    this.#options = options;
    this.#allowed = new Set(options.algorithms.filter(isJwtAlgorithm));
    this.#now = dependencies.now ?? Date.now;
    this.#keys = keySource(options, dependencies);
  }

  /** Aborts a JWKS fetch in progress; verifications waiting on it fail. */
  close(): void {
    this.#keys.close?.();
  }

  /** Checks a token; never rejects. */
  async verify(token: unknown): Promise<JwtResult> {
    try {
      return { ok: true, ...await this.#verify(token) };
    } catch (error) {
      if (error instanceof JwtFailure) return { ok: false, reason: error.message };
      return { ok: false, reason: `verification failed: ${String(error)}` };
    }
  }

  async #verify(token: unknown): Promise<VerifiedToken> {
    if (typeof token !== "string") throw new JwtFailure("malformed token: not a string");
    if (token.length > MAX_TOKEN_LENGTH) {
      throw new JwtFailure(`malformed token: longer than ${MAX_TOKEN_LENGTH} characters`);
    }
    const parts = token.split(".");
    if (parts.length !== 3) {
      throw new JwtFailure(`malformed token: ${parts.length} parts instead of 3`);
    }
    const header = readHeader(decodeJson(parts[0], "header"), this.#allowed);
    const signature = decodeBase64Url(parts[2], "signature");
    const key = await this.#keys.key(header);
    const signed = ascii.encode(`${parts[0]}.${parts[1]}`);
    if (!await verifySignature(header.alg, key, signature, signed)) {
      throw new JwtFailure("bad signature");
    }
    const claims = decodeJson(parts[1], "payload");
    return this.#checkClaims(claims);
  }

  #checkClaims(claims: JsonObject): VerifiedToken {
    const { leeway, issuer, audience } = this.#options;
    const now = this.#now() / 1000;
    const exp = numericDate(claims, "exp");
    const nbf = numericDate(claims, "nbf");
    if (exp !== undefined && now >= exp + leeway) throw new JwtFailure(`token expired at ${exp}`);
    if (nbf !== undefined && now + leeway < nbf) {
      throw new JwtFailure(`token not valid before ${nbf}`);
    }
    if (issuer != null && claims.iss !== issuer) {
      throw new JwtFailure(`issuer ${JSON.stringify(claims.iss)} is not ${issuer}`);
    }
    if (audience != null) {
      const wanted: readonly unknown[] = typeof audience === "string" ? [audience] : audience;
      const given: unknown[] = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
      if (!given.some((aud) => typeof aud === "string" && wanted.includes(aud))) {
        throw new JwtFailure(`audience ${JSON.stringify(claims.aud)} is not accepted`);
      }
    }
    return exp === undefined ? { claims } : { claims, expiresAt: (exp + leeway) * 1000 };
  }
}

function keySource(options: JwtOptions, dependencies: JwksOptions): KeySource {
  const { secret, public_key: pem, jwks_url: url } = options;
  if ([secret, pem, url].filter((source) => source != null).length !== 1) {
    throw new TypeError("exactly one of secret, public_key, jwks_url must be set");
  }
  if (secret != null) {
    const raw = ascii.encode(secret);
    return new FixedKey("hmac", (alg) => importKey("raw", raw, alg));
  }
  if (pem != null) {
    const { kind, spki } = readPublicKey(pem);
    return new FixedKey(kind, (alg) => importKey("spki", spki, alg));
  }
  return new JwksKeys(url!, dependencies);
}
