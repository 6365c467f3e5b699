/**
 * The JWS algorithms Shark accepts for JWT authentication (SPEC section 11)
 * and how WebCrypto imports keys for them and verifies their signatures. Each
 * algorithm needs one kind of key, which is what keeps an HMAC secret from
 * ever verifying an RSA/EC/Ed25519 token and a public key from ever
 * verifying an HMAC one.
 *
 * @module
 */
import type { KeyKind } from "./pem.ts";

interface AlgorithmSpec {
  readonly kind: KeyKind;
  /** The `importKey` algorithm. */
  readonly key: Algorithm;
  /** The `verify` algorithm. */
  readonly verify: Algorithm;
}

function hmac(hash: string): AlgorithmSpec {
  return { kind: "hmac", key: { name: "HMAC", hash } as Algorithm, verify: { name: "HMAC" } };
}

function rsa(name: string, hash: string, verify: object = {}): AlgorithmSpec {
  return { kind: "rsa", key: { name, hash } as Algorithm, verify: { name, ...verify } };
}

/** JWS ECDSA signatures are raw r||s (RFC 7518 section 3.4), as WebCrypto expects them. */
function ecdsa(kind: KeyKind, namedCurve: string, hash: string): AlgorithmSpec {
  return {
    kind,
    key: { name: "ECDSA", namedCurve } as Algorithm,
    verify: { name: "ECDSA", hash } as Algorithm,
  };
}

/** A JWS algorithm Shark can verify; `none` is not one, and never will be. */
export type JwtAlgorithm =
  | "HS256"
  | "HS384"
  | "HS512"
  | "RS256"
  | "RS384"
  | "RS512"
  | "PS256"
  | "ES256"
  | "ES384"
  | "EdDSA";

const ALGORITHMS: Readonly<Record<JwtAlgorithm, AlgorithmSpec>> = {
  HS256: hmac("SHA-256"),
  HS384: hmac("SHA-384"),
  HS512: hmac("SHA-512"),
  RS256: rsa("RSASSA-PKCS1-v1_5", "SHA-256"),
  RS384: rsa("RSASSA-PKCS1-v1_5", "SHA-384"),
  RS512: rsa("RSASSA-PKCS1-v1_5", "SHA-512"),
  // RFC 7518 section 3.5: the salt is as long as the hash.
  PS256: rsa("RSA-PSS", "SHA-256", { saltLength: 32 }),
  ES256: ecdsa("ec-p256", "P-256", "SHA-256"),
  ES384: ecdsa("ec-p384", "P-384", "SHA-384"),
  EdDSA: { kind: "ed25519", key: { name: "Ed25519" }, verify: { name: "Ed25519" } },
};

/** Every {@link JwtAlgorithm}, in the order SPEC section 11 lists them. */
export const JWT_ALGORITHMS: readonly JwtAlgorithm[] = Object.keys(ALGORITHMS) as JwtAlgorithm[];

/** Whether `name` is an algorithm Shark can verify. */
export function isJwtAlgorithm(name: unknown): name is JwtAlgorithm {
  return typeof name === "string" && Object.hasOwn(ALGORITHMS, name);
}

/** The kind of key an algorithm needs. */
export function keyKindOf(algorithm: JwtAlgorithm): KeyKind {
  return ALGORITHMS[algorithm].kind;
}

/** RSA keys below this size are refused, as RFC 7518 section 3.3 requires. */
export const MIN_RSA_BITS = 2048;

/** Why a token was refused; for logs only. */
export class JwtFailure extends Error {
  override readonly name = "JwtFailure";
}

/** The protected header of a token, as far as verification reads it. */
export interface JwtHeader {
  readonly alg: JwtAlgorithm;
  readonly kid?: string;
}

/** Where the verification key of a token comes from. */
export interface KeySource {
  /** The key to verify a token with this header; rejects with a {@link JwtFailure} when there is none. */
  key(header: JwtHeader): Promise<CryptoKey>;
  /** Stops work in progress (a fetch); the source stays usable. */
  close?(): void;
}

/** Imports a verification key for `algorithm`, refusing RSA keys that are too small. */
export async function importKey(
  format: "raw" | "spki" | "jwk",
  data: BufferSource | JsonWebKey,
  algorithm: JwtAlgorithm,
): Promise<CryptoKey> {
  const params = ALGORITHMS[algorithm].key;
  const key = format === "jwk"
    ? await crypto.subtle.importKey("jwk", data as JsonWebKey, params, false, ["verify"])
    : await crypto.subtle.importKey(format, data as BufferSource, params, false, ["verify"]);
  const bits = (key.algorithm as Partial<RsaHashedKeyAlgorithm>).modulusLength;
  if (bits !== undefined && bits < MIN_RSA_BITS) {
    throw new JwtFailure(`an RSA key of ${bits} bits is below ${MIN_RSA_BITS}`);
  }
  return key;
}

/** Whether `signature` signs `data` with `key` under `algorithm`; false for any malformed signature. */
export async function verifySignature(
  algorithm: JwtAlgorithm,
  key: CryptoKey,
  signature: BufferSource,
  data: BufferSource,
): Promise<boolean> {
  try {
    return await crypto.subtle.verify(ALGORITHMS[algorithm].verify, key, signature, data);
  } catch {
    return false;
  }
}
