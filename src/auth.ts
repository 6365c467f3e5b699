/**
 * Authentication of the `auth` event (SPEC section 1 "auth"): which method a
 * request names, and one {@link Authenticator} per configured method. Ticket
 * authentication asks the configured validation service; another method
 * (JWT, SPEC section 11) is one more `Authenticator` registered by
 * {@link Authentication}, with no change to event handling.
 *
 * @module
 */
import { errorOf, succeeded } from "./callbacks.ts";
import type { SharkConfig } from "./config.ts";
import { AuthMethod, DEFAULT_AUTH_METHOD, ErrorText } from "./protocol.ts";
import type { ServiceClient } from "./service_client.ts";
import type { Session } from "./session.ts";
import { isObject, type JsonObject, pick } from "./util.ts";

/** What an `auth` request comes to: the session's new auth info, or the error sent to the client. */
export type AuthResult = { readonly authInfo: JsonObject } | { readonly error: unknown };

/** One authentication method. */
export interface Authenticator {
  /**
   * Checks the credentials of one `auth` request. Resolves to an error for
   * the client rather than rejecting; a rejection is an unexpected failure.
   */
  authenticate(request: JsonObject, session: Session): Promise<AuthResult>;
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
 * The configured authentication methods, by the name an `auth` request gives
 * in `method`.
 *
 * @example
 * ```ts
 * const auth = new Authentication(config.authentication, client);
 * const result = await auth.authenticate({ event: "auth", ticket: "t" }, session);
 * ```
 */
export class Authentication {
  readonly #methods = new Map<string, Authenticator>();

  constructor(config: SharkConfig["authentication"], client: ServiceClient) {
    if (config.ticket) {
      this.#methods.set(AuthMethod.ticket, new TicketAuthenticator(config.ticket, client));
    }
  }

  /** Authenticates with the request's `method`, `ticket` when it names none. */
  authenticate(request: JsonObject, session: Session): Promise<AuthResult> {
    const method = Object.hasOwn(request, "method") ? request.method : DEFAULT_AUTH_METHOD;
    const authenticator = typeof method === "string" ? this.#methods.get(method) : undefined;
    if (!authenticator) return Promise.resolve({ error: ErrorText.authUnsupported });
    return authenticator.authenticate(request, session);
  }
}
