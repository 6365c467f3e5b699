/**
 * `authentication.jwt` of the configuration (SPEC section 11): its keys, and
 * the checks that refuse at start a key that cannot verify what
 * `algorithms` lists, so that no token is ever checked against the wrong
 * kind of key.
 *
 * @module
 */
import { z } from "zod";
import { checkHttpUrl, type EnvLookup, fieldList, seconds, secret } from "./fields.ts";
import { JWT_ALGORITHMS, type JwtAlgorithm, keyKindOf } from "../auth/jws.ts";
import { type KeyKind, PemError, readPublicKey } from "../auth/pem.ts";

/** RFC 7518 section 3.2: an HMAC key at least as long as the hash output, in bytes. */
const MIN_SECRET_BYTES: Partial<Record<JwtAlgorithm, number>> = {
  HS256: 32,
  HS384: 48,
  HS512: 64,
};

const KEY_NAMES: Record<KeyKind, string> = {
  "hmac": "an HMAC secret",
  "rsa": "an RSA key",
  "ec-p256": "an EC P-256 key",
  "ec-p384": "an EC P-384 key",
  "ed25519": "an Ed25519 key",
};

const SOURCES = ["secret", "public_key", "jwks_url"] as const;

function pemProblem(text: string): string | undefined {
  try {
    readPublicKey(text);
  } catch (error) {
    if (!(error instanceof PemError)) throw error;
    return `${error.message} (the PEM text itself, or {"env": NAME} holding it; a path is not read)`;
  }
}

function jwksUrlProblem(text: string): string | undefined {
  const problem = checkHttpUrl(text);
  if (problem) return problem;
  const url = new URL(text);
  if (url.username || url.password) return "credentials in the URL are not supported";
}

const algorithm = z.enum(JWT_ALGORITHMS as [JwtAlgorithm, ...JwtAlgorithm[]], {
  error: (issue) =>
    String(issue.input).toLowerCase() === "none"
      ? "none is never accepted: tokens must be signed"
      : `expected one of ${JWT_ALGORITHMS.join(", ")}`,
});

/** What `algorithms` lists that the configured key source cannot verify. */
function misfits(
  jwt: { secret: string | null; public_key: string | null; algorithms: readonly JwtAlgorithm[] },
): string[] {
  const problems: string[] = [];
  if (jwt.secret !== null) {
    const bytes = new TextEncoder().encode(jwt.secret).length;
    for (const alg of jwt.algorithms) {
      if (keyKindOf(alg) !== "hmac") {
        problems.push(`${alg} needs a public_key or jwks_url, not a secret`);
      } else if (bytes < MIN_SECRET_BYTES[alg]!) {
        problems.push(`${alg} needs a secret of at least ${MIN_SECRET_BYTES[alg]} bytes`);
      }
    }
    return problems;
  }
  const kind = jwt.public_key === null ? undefined : readPublicKey(jwt.public_key).kind;
  for (const alg of jwt.algorithms) {
    const needs = keyKindOf(alg);
    if (needs === "hmac") problems.push(`${alg} needs a secret`);
    else if (kind && needs !== kind) {
      problems.push(`${alg} needs ${KEY_NAMES[needs]}, and public_key is ${KEY_NAMES[kind]}`);
    }
  }
  return problems;
}

/** The schema of `authentication.jwt`; `env` resolves `{"env": NAME}` values. */
export function jwtSchema(env: EnvLookup) {
  return z.strictObject({
    secret: secret(env).nullable().default(null).describe(
      "HMAC secret (its UTF-8 bytes) for HS256/384/512: at least 32/48/64 bytes.",
    ),
    public_key: secret(env, pemProblem).nullable().default(null).describe(
      "PEM public key text: BEGIN PUBLIC KEY (RSA, EC P-256/P-384, Ed25519) or BEGIN RSA PUBLIC KEY.",
    ),
    jwks_url: secret(env, jwksUrlProblem).nullable().default(null).describe(
      "URL of a JSON Web Key Set; fetched when first needed, cached, and fetched again for " +
        "an unknown kid (at most every 30 s) or keys older than 10 minutes.",
    ),
    algorithms: z.array(algorithm).min(1, "list at least one algorithm").default(["HS256"])
      .describe("Accepted signature algorithms; none is never accepted."),
    issuer: z.string().min(1).nullable().default(null)
      .describe("The iss claim a token must carry; null: not checked."),
    audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).nullable()
      .default(null).describe(
        "The aud a token must carry (its aud, a string or a list, must contain this or one of " +
          "these); null: not checked.",
      ),
    leeway: seconds.default(5).describe("Seconds of clock skew allowed on exp and nbf."),
    auth_fields: fieldList.default(["sub"])
      .describe("Claims of the token kept as the session's auth info."),
  }).superRefine((jwt, ctx) => {
    const set = SOURCES.filter((key) => jwt[key] !== null);
    if (set.length !== 1) {
      ctx.addIssue({
        code: "custom",
        path: set.length === 0 ? [] : [set[1]],
        message: set.length === 0
          ? "set one of secret, public_key, jwks_url"
          : `only one of secret, public_key, jwks_url may be set (${set.join(", ")} are)`,
      });
      return;
    }
    for (const message of misfits(jwt)) {
      ctx.addIssue({ code: "custom", path: ["algorithms"], message });
    }
  });
}
