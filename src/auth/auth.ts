/**
 * Authentication of the `auth` event (SPEC section 1 "auth"): which method a
 * request names, and one {@link Authenticator} per configured method. Ticket
 * authentication asks the configured validation service; JWT authentication
 * (SPEC section 11) verifies a signed token itself, and tells when the
 * token expires.
 *
 * @module
 */
import { errorOf, succeeded } from "../callbacks/callbacks.ts";
import type { JwtConfig, SharkConfig } from "../config/config.ts";
import { JwtVerifier } from "./jwt.ts";
import type { AuthOutcome, Metrics } from "../metrics/metrics.ts";
import { AuthMethod, DEFAULT_AUTH_METHOD, ErrorText } from "../protocol.ts";
import type { ServiceClient } from "../callbacks/service_client.ts";
import type { Session } from "../session/session.ts";
import { isObject, type JsonObject, pick } from "../json.ts";

/**
 * What an `auth` request comes to: the session's new auth info, with the
 * milliseconds until the credentials expire when they do, or the error sent
 * to the client.
 */
export type AuthResult =
  | { readonly authInfo: JsonObject; readonly expiresIn?: number }
  | { readonly error: unknown };

/** One authentication method. */
export interface Authenticator {
  /**
   * Checks the credentials of one `auth` request. Resolves to an error for
   * the client rather than rejecting; a rejection is an unexpected failure.
   */
  authenticate(request: JsonObject, session: Session): Promise<AuthResult>;
  /** Stops work in progress, at shutdown. */
  close?(): void;
}

type TicketConfig = NonNullable<SharkConfig["authentication"]["ticket"]>;

/** Python truthiness, as SocketShark tests `ticket`. */
function truthy(value: unknown): boolean {
  if (Array.isArray(value)) return value.length > 0;
  if (isObject(value)) return Object.keys(value).length > 0;
  return Boolean(value);
}

/** `method: "ticket"`: the validation service vouches for the ticket. */
class TicketAuthenticator implements Authenticator {
  readonly #config: TicketConfig;
  readonly #client: ServiceClient;

  constructor(config: TicketConfig, client: ServiceClient) {
    this.#config = config;
    this.#client = client;
  }

  async authenticate(request: JsonObject, session: Session): Promise<AuthResult> {
    if (!truthy(request.ticket)) return { error: ErrorText.needsTicket };
    const reply = await this.#client.post(
      "auth",
      this.#config.validation_url,
      { ticket: request.ticket },
      session,
    );
    if (!succeeded(reply)) return { error: errorOf(reply, ErrorText.authFailed) };
    return { authInfo: pick(reply, this.#config.auth_fields) };
  }
}

/**
 * `method: "jwt"`: the token's signature and claims are checked here. Why a
 * token was refused is logged, never sent: it would help a forger.
 */
class JwtAuthenticator implements Authenticator {
  readonly #verifier: JwtVerifier;
  readonly #fields: readonly string[];

  constructor(config: JwtConfig) {
    this.#verifier = new JwtVerifier(config);
    this.#fields = config.auth_fields;
  }

  async authenticate(request: JsonObject, session: Session): Promise<AuthResult> {
    if (!truthy(request.token)) return { error: ErrorText.needsToken };
    const result = await this.#verifier.verify(request.token);
    if (!result.ok) {
      session.log.info("JWT refused: {reason}", { reason: result.reason });
      return { error: ErrorText.authFailed };
    }
    const authInfo = pick(result.claims, this.#fields);
    if (result.expiresAt === undefined) return { authInfo };
    return { authInfo, expiresIn: result.expiresAt - Date.now() };
  }

  close(): void {
    this.#verifier.close();
  }
}

const METHOD_LABELS: ReadonlySet<unknown> = new Set(Object.values(AuthMethod));

function outcomeOf(result: AuthResult): AuthOutcome {
  if (!("error" in result)) return "ok";
  return result.error === ErrorText.serviceUnavailable ? "unavailable" : "failed";
}

/**
 * The configured authentication methods, by the name an `auth` request gives
 * in `method`.
 *
 * @example
 * ```ts
 * const auth = new Authentication(config.authentication, client, metrics);
 * const result = await auth.authenticate({ event: "auth", ticket: "t" }, session);
 * ```
 */
export class Authentication {
  readonly #methods = new Map<string, Authenticator>();
  readonly #metrics: Metrics;

  constructor(config: SharkConfig["authentication"], client: ServiceClient, metrics: Metrics) {
    this.#metrics = metrics;
    if (config.ticket) {
      this.#methods.set(AuthMethod.ticket, new TicketAuthenticator(config.ticket, client));
    }
    if (config.jwt) this.#methods.set(AuthMethod.jwt, new JwtAuthenticator(config.jwt));
  }

  /** Authenticates with the request's `method`, `ticket` when it names none; counts the outcome. */
  async authenticate(request: JsonObject, session: Session): Promise<AuthResult> {
    const method = Object.hasOwn(request, "method") ? request.method : DEFAULT_AUTH_METHOD;
    // A label per method Shark knows, so that clients cannot add label values.
    const label = METHOD_LABELS.has(method) ? method as string : "other";
    const authenticator = typeof method === "string" ? this.#methods.get(method) : undefined;
    if (!authenticator) {
      this.#metrics.auth(label, "unsupported");
      return { error: ErrorText.authUnsupported };
    }
    const result = await authenticator.authenticate(request, session);
    this.#metrics.auth(label, outcomeOf(result));
    return result;
  }

  /** Stops work in progress (a JWKS fetch), at shutdown. */
  close(): void {
    for (const authenticator of this.#methods.values()) authenticator.close?.();
  }
}
