/**
 * The commands of the server API (SPEC section 13): their validation, with
 * the 400 answers a bad body gets, their form on the control topic, and
 * which sessions a command is for.
 *
 * @module
 */
import type { PresenceConfig, SharkConfig } from "../config/config.ts";
import { serviceOf } from "../delivery/subscription_name.ts";
import { isObject, jsonEqual, type JsonObject } from "../json.ts";
import { ErrorText, HttpErrorText } from "../protocol.ts";

/**
 * A server API call that cannot be carried out: `status` 400 (the request is
 * invalid; nothing was done) or 503 (the adapter or the store failed), and
 * the reason as `message`.
 *
 * @example
 * ```ts
 * try {
 *   await shark.disconnect({ match: {} });
 * } catch (error) {
 *   if (error instanceof ServerApiError) console.log(error.status, error.message); // 400 ...
 * }
 * ```
 */
export class ServerApiError extends Error {
  override readonly name = "ServerApiError";
  /** The HTTP status the server API answers with. */
  readonly status: 400 | 503;

  constructor(status: 400 | 503, message: string) {
    super(message);
    this.status = status;
  }
}

/**
 * Which connections a command is for: the one with a `client` id, or every
 * one whose auth info has each field of `match` with an equal JSON value.
 */
export type SessionTarget =
  | { readonly client: string; readonly match?: undefined }
  | { readonly match: JsonObject; readonly client?: undefined };

/** What `disconnect` takes: the target, and whether the clients should reconnect (default no). */
export type DisconnectOptions = SessionTarget & { readonly reconnect?: boolean };

/** What `unsubscribe` takes: the subscription name and the target. */
export type UnsubscribeOptions = SessionTarget & { readonly subscription: string };

/** A validated command, as it travels on the control topic. */
export type Command =
  | { readonly command: "disconnect"; readonly target: SessionTarget; readonly reconnect: boolean }
  | {
    readonly command: "unsubscribe";
    readonly target: SessionTarget;
    readonly subscription: string;
  };

function invalid(reason: string): never {
  throw new ServerApiError(400, reason);
}

/** A body's `client` or `match`, exactly one of them. */
function targetOf(body: JsonObject): SessionTarget {
  const hasClient = Object.hasOwn(body, "client");
  const hasMatch = Object.hasOwn(body, "match");
  const { client, match } = body;
  if (hasClient && (typeof client !== "string" || client === "")) invalid(HttpErrorText.badClient);
  if (hasMatch && (!isObject(match) || Object.keys(match).length === 0)) {
    invalid(HttpErrorText.badMatch);
  }
  if (hasClient === hasMatch) invalid(HttpErrorText.oneTarget);
  return hasClient ? { client: client as string } : { match: match as JsonObject };
}

function objectOf(body: unknown): JsonObject {
  return isObject(body) ? body : invalid(HttpErrorText.notAnObject);
}

/**
 * A subscription name and its service; 400 `Invalid subscription format.`
 * (a missing, empty or malformed name) or `Invalid service.`.
 */
export function serviceNamed(
  name: unknown,
  services: SharkConfig["services"],
): SharkConfig["services"][string] {
  const service = typeof name === "string" ? serviceOf(name) : undefined;
  if (service === undefined) invalid(ErrorText.invalidSubscriptionFormat);
  if (!Object.hasOwn(services, service)) invalid(ErrorText.invalidService);
  return services[service];
}

/**
 * The topic a `POST /presence` body names, and its service's presence
 * settings; throws a 400 {@link ServerApiError} for a bad body or name, or a
 * service without presence.
 */
export function presenceNamed(
  body: unknown,
  services: SharkConfig["services"],
): [string, PresenceConfig] {
  const name = objectOf(body).subscription;
  const presence = serviceNamed(name, services).presence ?? invalid(ErrorText.presenceNotEnabled);
  return [name as string, presence];
}

/** A `disconnect` body as a command; throws a 400 {@link ServerApiError}. */
export function disconnectCommand(body: unknown): Command {
  const object = objectOf(body);
  const target = targetOf(object);
  const reconnect = object.reconnect ?? false;
  if (typeof reconnect !== "boolean") invalid(HttpErrorText.badReconnect);
  return { command: "disconnect", target, reconnect };
}

/** An `unsubscribe` body as a command; throws a 400 {@link ServerApiError}. */
export function unsubscribeCommand(body: unknown, services: SharkConfig["services"]): Command {
  const object = objectOf(body);
  serviceNamed(object.subscription, services);
  return {
    command: "unsubscribe",
    target: targetOf(object),
    subscription: object.subscription as string,
  };
}

/** A command as the control topic carries it. */
export function commandPayload(command: Command): string {
  const { target, ...rest } = command;
  return JSON.stringify({ ...rest, ...target });
}

/**
 * A command taken from the control topic, or `undefined` when the payload is
 * not a valid one (written by something other than a Shark node).
 */
export function parseCommand(
  payload: string,
  services: SharkConfig["services"],
): Command | undefined {
  try {
    const body: unknown = JSON.parse(payload);
    if (!isObject(body)) return undefined;
    if (body.command === "disconnect") return disconnectCommand(body);
    if (body.command === "unsubscribe") return unsubscribeCommand(body, services);
  } catch {
    // Not JSON, or not a valid command: dropped like any other.
  }
  return undefined;
}

/** Whether a session is one a command targets. */
export function targets(
  target: SessionTarget,
  session: { isClient(client: string): boolean; readonly authInfo: JsonObject },
): boolean {
  if (target.client !== undefined) return session.isClient(target.client);
  const info = session.authInfo;
  for (const [field, value] of Object.entries(target.match)) {
    if (!Object.hasOwn(info, field) || !jsonEqual(info[field], value)) return false;
  }
  return true;
}
