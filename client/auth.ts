/**
 * Authentication on a connection: the `auth` hook's credentials sent as an
 * `auth` event, and for a JWT with an `exp` a refresh before it expires, the
 * fresh token sent on the open connection (docs/protocol.md, "Extension: JWT
 * authentication"). The refresh timer runs on the connection's clock.
 *
 * @module
 */
import { ClientEvent } from "../src/protocol.ts";
import type { Connection } from "./connection.ts";
import { deferred } from "./deferred.ts";
import { asError, errorOf } from "./errors.ts";
import type { AuthContext, Credentials, JsonObject } from "./types.ts";

/** What authenticating needs of its client. */
export interface AuthSession {
  /** The application's `auth` hook. */
  readonly auth: (context: AuthContext) => Credentials | Promise<Credentials>;
  /** How long before `exp` a JWT is refreshed (ms), at most half its life. */
  readonly refreshBefore: number;
  /** Whether `connection` is still the client's: an old one's answers are ignored. */
  current(connection: Connection): boolean;
  /** A refresh failed on the current connection (Shark's 4001 then reconnects). */
  report(error: Error): void;
}

/**
 * Gets credentials and sends them; resolves on `ok`, throws on a refusal.
 * For a JWT with an `exp`, arms the connection's refresh timer.
 */
export async function login(
  session: AuthSession,
  connection: Connection,
  reason: AuthContext["reason"],
): Promise<void> {
  const credentials = await session.auth({ reason });
  if (!session.current(connection)) return;
  const { promise, resolve, reject } = deferred<void>();
  const frame: JsonObject = credentials.method === "jwt"
    ? { event: ClientEvent.auth, method: "jwt", token: credentials.token }
    : { event: ClientEvent.auth, method: "ticket", ticket: credentials.ticket };
  connection.send([frame], {
    event: ClientEvent.auth,
    count: 1,
    answer: (reply) => reply?.status === "ok" ? resolve() : reject(errorOf(reply!)),
    fail: reject,
  });
  await promise;
  const delay = credentials.method === "jwt"
    ? refreshDelay(credentials.token, session.refreshBefore, connection.clock.now())
    : undefined;
  if (delay !== undefined) connection.after("refresh", delay, () => refresh(session, connection));
}

/** A fresh JWT on the open connection; a failure is reported. */
async function refresh(session: AuthSession, connection: Connection): Promise<void> {
  try {
    await login(session, connection, "refresh");
  } catch (error) {
    if (session.current(connection)) session.report(asError(error));
  }
}

/**
 * When to fetch a fresh token (ms from `now`), from the unverified payload's
 * `exp`; `undefined` without one. When this clock and the issuer's disagree
 * about the remaining life (more than `exp − iat`, or none left although
 * Shark just accepted it), the token's own lifetime is trusted.
 */
function refreshDelay(token: string, before: number, now: number): number | undefined {
  let claims: { exp?: unknown; iat?: unknown };
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    claims = JSON.parse(atob(part.padEnd(Math.ceil(part.length / 4) * 4, "=")));
  } catch {
    return undefined;
  }
  const { exp, iat } = claims;
  if (typeof exp !== "number") return undefined;
  let left = exp * 1000 - now;
  const life = typeof iat === "number" && exp > iat ? (exp - iat) * 1000 : undefined;
  if (life !== undefined && (left <= 0 || left > life)) left = life;
  return Math.max(0, left - Math.min(before, left / 2));
}
