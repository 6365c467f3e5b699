/**
 * A subscription's service callbacks (SPEC section 2): who gets called with
 * which body, and authorization with its authorizer fields.
 *
 * @module
 */
import type { CallbackName } from "../config/config.ts";
import type { ServiceClient, ServiceReply } from "./service_client.ts";
import type { Subscription } from "../delivery/subscription.ts";
import { jsonEqual, type JsonObject, pick } from "../json.ts";

const OK: ServiceReply = Object.freeze({ status: "ok" });

/** The callbacks a subscription's end owes its service. */
const OWED: ReadonlySet<CallbackName> = new Set(["before_unsubscribe", "on_unsubscribe"]);

/** The reply's `error` when the service gave one, else `fallback`. */
export function errorOf(reply: ServiceReply, fallback: string): unknown {
  return reply.error ?? fallback;
}

/** Whether a service reply means success. */
export function succeeded(reply: ServiceReply): boolean {
  return reply.status === "ok";
}

/**
 * Calls the callbacks configured for a subscription's service.
 *
 * @example
 * ```ts
 * const reply = await callbacks.call(subscription, "before_subscribe");
 * ```
 */
export class Callbacks {
  readonly #client: ServiceClient;

  constructor(client: ServiceClient) {
    this.#client = client;
  }

  /**
   * POSTs the subscription's callback body (plus `more`) to its `name`
   * callback; a callback the service does not configure succeeds at once.
   */
  call(
    subscription: Subscription,
    name: CallbackName,
    more?: JsonObject,
  ): Promise<ServiceReply> {
    const url = subscription.service[name];
    if (!url) return Promise.resolve(OK);
    const session = subscription.session;
    // A service is owed its unsubscribe callbacks whatever becomes of the
    // session (it would keep the subscription otherwise): they never give up
    // waiting because it closed. Any other reply is only wanted by the session.
    const caller = OWED.has(name)
      ? {
        get log() {
          return session.log;
        },
      }
      : session;
    return this.#client.post(name, url, subscription.callbackBody(more), caller);
  }

  /**
   * Calls the authorizer and keeps its authorizer fields; when they change on
   * a renewal, calls `on_authorization_change` with the new ones.
   */
  async authorize(subscription: Subscription): Promise<ServiceReply> {
    const reply = await this.call(subscription, "authorizer");
    if (!succeeded(reply) || !subscription.service.authorizer) return reply;
    const fields = pick(reply, subscription.service.authorizer_fields);
    const previous = subscription.authorizerData;
    subscription.authorizerData = fields;
    if (previous !== null && !jsonEqual(previous, fields) && subscription.active) {
      await this.call(subscription, "on_authorization_change");
    }
    return reply;
  }
}
