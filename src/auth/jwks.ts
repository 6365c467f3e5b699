/**
 * Verification keys from a JSON Web Key Set URL (SPEC section 11): fetched
 * when first needed, cached, picked by `kid`, and fetched again when a token
 * names an unknown `kid` (key rotation). Such refetches, and any fetch after
 * a failed one, happen at most once per {@link JWKS_REFETCH_INTERVAL_MS},
 * whatever tokens arrive; only the first successful load does not count, so
 * that a key rotated in just after it is still picked up. A JWKS endpoint
 * that fails, hangs or answers garbage only makes tokens fail verification,
 * with the reason.
 *
 * @module
 */
import { importKey, isJwtAlgorithm, JwtFailure, keyKindOf } from "./jws.ts";
import type { JwtAlgorithm, JwtHeader, KeySource } from "./jws.ts";
import type { KeyKind } from "./pem.ts";
import { isObject } from "../json.ts";
import { readLimited } from "../http/read_limited.ts";

/** The JWKS is fetched again (or after a failure) at most once per this many milliseconds. */
export const JWKS_REFETCH_INTERVAL_MS = 30_000;

/** Keys older than this are fetched again when next used, so that a revoked key stops verifying. */
export const JWKS_MAX_AGE_MS = 10 * 60_000;

/** One fetch of the JWKS may take this long by default. */
export const JWKS_TIMEOUT_MS = 5_000;

/** A larger JWKS response is refused. */
export const JWKS_MAX_BYTES = 256 * 1024;

/** Keys beyond this many in one JWKS are ignored. */
export const JWKS_MAX_KEYS = 100;

/** A usable key of the set: the members WebCrypto needs, and what it may verify. */
interface SetKey {
  readonly kid: string | undefined;
  readonly kind: KeyKind;
  /** The key's `alg`, when it names one: then it verifies only that algorithm. */
  readonly alg: JwtAlgorithm | undefined;
  readonly jwk: JsonWebKey;
  readonly imported: Map<JwtAlgorithm, Promise<CryptoKey>>;
}

/** Members kept per key type: `alg`, `use`, `key_ops` are checked here, not by WebCrypto. */
const MEMBERS: Record<string, readonly string[]> = {
  RSA: ["n", "e"],
  EC: ["crv", "x", "y"],
  OKP: ["crv", "x"],
};

function kindOf(jwk: Record<string, unknown>): KeyKind | undefined {
  if (jwk.kty === "RSA") return "rsa";
  if (jwk.kty === "EC" && jwk.crv === "P-256") return "ec-p256";
  if (jwk.kty === "EC" && jwk.crv === "P-384") return "ec-p384";
  if (jwk.kty === "OKP" && jwk.crv === "Ed25519") return "ed25519";
  // Symmetric ("oct") keys never come from a public URL; other curves are not supported.
  return undefined;
}

/** The key as Shark may use it, or `undefined` when it cannot verify a supported JWS. */
function usable(value: unknown): SetKey | undefined {
  if (!isObject(value)) return undefined;
  const kind = kindOf(value);
  if (!kind) return undefined;
  const { kid, alg, use, key_ops: ops } = value;
  if (use !== undefined && use !== "sig") return undefined;
  if (ops !== undefined && !(Array.isArray(ops) && ops.includes("verify"))) return undefined;
  if (kid !== undefined && typeof kid !== "string") return undefined;
  if (alg !== undefined && !(isJwtAlgorithm(alg) && keyKindOf(alg) === kind)) return undefined;
  const jwk: Record<string, string> = { kty: value.kty as string };
  for (const member of MEMBERS[value.kty as string]) {
    if (typeof value[member] !== "string") return undefined;
    jwk[member] = value[member] as string;
  }
  return { kid, kind, alg, jwk, imported: new Map() };
}

/** Dependencies a test may replace. */
export interface JwksOptions {
  /** The clock, in milliseconds since the epoch. Default `Date.now`. */
  readonly now?: () => number;
  /** Milliseconds one fetch of the set may take. Default {@link JWKS_TIMEOUT_MS}. */
  readonly timeoutMs?: number;
}

/**
 * The keys of one JWKS URL.
 *
 * @example
 * ```ts
 * const keys = new JwksKeys("https://id.example.com/.well-known/jwks.json");
 * const key = await keys.key({ alg: "RS256", kid: "2024-05" });
 * ```
 */
export class JwksKeys implements KeySource {
  readonly #url: string;
  readonly #now: () => number;
  readonly #timeoutMs: number;
  #keys: readonly SetKey[] = [];
  /** When the last fetch that counts against {@link JWKS_REFETCH_INTERVAL_MS} started. */
  #refetchedAt = -Infinity;
  /** When the keys were last replaced by a successful fetch. */
  #loadedAt = -Infinity;
  #problem: string | undefined;
  #loading: Promise<void> | undefined;
  #abort: AbortController | undefined;

  constructor(url: string, { now = Date.now, timeoutMs = JWKS_TIMEOUT_MS }: JwksOptions = {}) {
    this.#url = url;
    this.#now = now;
    this.#timeoutMs = timeoutMs;
  }

  /** The key for a token with this header; throws a {@link JwtFailure} when there is none. */
  async key(header: JwtHeader): Promise<CryptoKey> {
    const { alg, kid } = header;
    if (keyKindOf(alg) === "hmac") {
      throw new JwtFailure(`algorithm ${alg} needs a secret, not a key from a JWKS`);
    }
    let fetched = false;
    if (this.#now() - this.#loadedAt >= JWKS_MAX_AGE_MS) fetched = await this.#refresh();
    let found = this.#find(header);
    if (found.length === 0 && !fetched) {
      fetched = await this.#refresh();
      if (fetched) found = this.#find(header);
    }
    const which = kid === undefined ? "no kid" : `kid ${JSON.stringify(kid)}`;
    if (found.length === 0) {
      const problem = this.#problem ? ` (last JWKS fetch: ${this.#problem})` : "";
      throw new JwtFailure(`no JWKS key for ${alg} with ${which}${problem}`);
    }
    if (found.length > 1) {
      throw new JwtFailure(`${found.length} JWKS keys fit ${alg} with ${which}: ambiguous`);
    }
    const entry = found[0];
    let key = entry.imported.get(alg);
    if (!key) entry.imported.set(alg, key = importKey("jwk", entry.jwk, alg));
    try {
      return await key;
    } catch (error) {
      const reason = error instanceof JwtFailure ? error.message : String(error);
      throw new JwtFailure(`JWKS key ${JSON.stringify(entry.kid)} is unusable: ${reason}`);
    }
  }

  /** Aborts a fetch in progress; later calls may fetch again. */
  close(): void {
    this.#abort?.abort();
  }

  #find({ alg, kid }: JwtHeader): SetKey[] {
    const kind = keyKindOf(alg);
    return this.#keys.filter((key) =>
      key.kind === kind && (key.alg === undefined || key.alg === alg) &&
      (kid === undefined || key.kid === kid)
    );
  }

  /** Fetches the set unless one fetch is running or one started too recently; whether it did. */
  async #refresh(): Promise<boolean> {
    if (this.#loading) {
      await this.#loading;
      return true;
    }
    const started = this.#now();
    if (started - this.#refetchedAt < JWKS_REFETCH_INTERVAL_MS) return false;
    if (this.#loadedAt !== -Infinity) this.#refetchedAt = started;
    this.#loading = this.#load().finally(() => this.#loading = undefined);
    await this.#loading;
    if (this.#problem !== undefined) this.#refetchedAt = started;
    return true;
  }

  async #load(): Promise<void> {
    const abort = this.#abort = new AbortController();
    const timer = setTimeout(
      () => abort.abort(new DOMException("the JWKS fetch timed out", "TimeoutError")),
      this.#timeoutMs,
    );
    try {
      const response = await fetch(this.#url, {
        headers: { accept: "application/json" },
        signal: abort.signal,
      });
      if (!response.ok) {
        await response.body?.cancel();
        throw new Error(`HTTP status ${response.status}`);
      }
      const set: unknown = JSON.parse(await readLimited(response, JWKS_MAX_BYTES));
      if (!isObject(set) || !Array.isArray(set.keys)) throw new Error("no keys array");
      this.#keys = set.keys.slice(0, JWKS_MAX_KEYS).map(usable).filter((key) => key !== undefined);
      this.#loadedAt = this.#now();
      this.#problem = undefined;
    } catch (error) {
      this.#problem = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    } finally {
      clearTimeout(timer);
      this.#abort = undefined;
    }
  }
}
