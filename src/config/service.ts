/**
 * One service under `services` in `shark.json` (SPEC sections 2, 4, 5, 6, 10
 * and 12): its callbacks and delivery rules, each key with its default and its
 * meaning, and the contradictions between them.
 *
 * @module
 */
import { z } from "zod";
import {
  checkHttpUrl,
  type EnvLookup,
  fieldList,
  positiveSeconds,
  seconds,
  secret,
} from "./fields.ts";
import { presenceSchema } from "./presence.ts";
import { HISTORY_RESERVED_FIELDS, PRESENCE_RESERVED_FIELDS, RESERVED_FIELDS } from "../protocol.ts";

/** The schema of one service; `env` resolves `{"env": "NAME"}` callback URLs. */
export function serviceSchema(env: EnvLookup) {
  const callback = secret(env, checkHttpUrl).nullable().default(null);
  return z.strictObject({
    require_authentication: z.boolean().default(true)
      .describe("Subscribing needs a successful auth event first."),
    authorizer: callback.describe(
      "URL that authorizes each subscribe and renewal; null authorizes everything.",
    ),
    authorizer_fields: fieldList.default([]).describe(
      "Keys of the authorizer's reply kept and sent with every later callback of the subscription.",
    ),
    authorization_renewal_period: positiveSeconds.nullable().default(null)
      .describe("Seconds between re-authorizations of a subscription; null: never."),
    authorization_renewal_jitter: seconds.default(0)
      .describe("Up to this many seconds are taken off each renewal period at random."),
    extra_fields: fieldList.default([]).describe(
      "Keys of the subscribe request kept with the subscription, sent with its callbacks and echoed in its messages; none may be a key Shark writes itself (event, status, error, data, subscription, the delivery metadata, with history offset, epoch, recovered, recover, and with presence client, member, members, clients, users).",
    ),
    filter_fields: fieldList.default([]).describe(
      "Envelope keys a message must match to be delivered: one of extra_fields against the subscription's value, any other against the session's auth info.",
    ),
    before_subscribe: callback.describe(
      "URL called before a subscription is confirmed; an error reply refuses it, options.order seeds the order.",
    ),
    on_subscribe: callback.describe("URL called once a subscription is confirmed."),
    on_message: callback.describe("URL the client's message events are sent to."),
    before_unsubscribe: callback.describe("URL called before a subscription ends."),
    on_unsubscribe: callback.describe("URL called after a subscription ended."),
    on_authorization_change: callback.describe(
      "URL called when a renewal returns other authorizer fields than the last one.",
    ),
    heartbeat_period: positiveSeconds.nullable().default(null)
      .describe("Seconds between on_heartbeat calls of a subscription; null: none."),
    on_heartbeat: callback.describe("URL called every heartbeat_period seconds per subscription."),
    history: z.strictObject({
      size: z.int().min(1).max(10000).describe("Envelopes kept per topic (1-10000)."),
      ttl: positiveSeconds.describe("Seconds a topic's history lives after its last publish."),
    }).nullable().default(null).describe(
      "Keep each topic's last envelopes: messages carry offset and epoch, clients may recover; null: off.",
    ),
    presence: presenceSchema,
  }).superRefine((service, ctx) => {
    const contradiction = (path: string, message: string) =>
      ctx.addIssue({ code: "custom", path: [path], message });
    if (service.authorization_renewal_period !== null && !service.authorizer) {
      contradiction("authorization_renewal_period", "needs an authorizer to call");
    }
    if (
      service.authorization_renewal_period !== null &&
      service.authorization_renewal_jitter >= service.authorization_renewal_period
    ) {
      contradiction("authorization_renewal_jitter", "must be less than the renewal period");
    }
    if (service.authorizer_fields.length > 0 && !service.authorizer) {
      contradiction("authorizer_fields", "needs an authorizer to return them");
    }
    if (service.on_authorization_change && service.authorization_renewal_period === null) {
      contradiction("on_authorization_change", "is only called with authorization_renewal_period");
    }
    const reserved = [
      ...RESERVED_FIELDS,
      ...(service.history ? HISTORY_RESERVED_FIELDS : []),
      ...(service.presence ? PRESENCE_RESERVED_FIELDS : []),
    ];
    for (const field of service.extra_fields.filter((field) => reserved.includes(field))) {
      contradiction(
        "extra_fields",
        `${JSON.stringify(field)} is a key Shark writes into the subscription's frames`,
      );
    }
    if ((service.heartbeat_period === null) !== !service.on_heartbeat) {
      contradiction(
        service.on_heartbeat ? "heartbeat_period" : "on_heartbeat",
        "heartbeat_period and on_heartbeat must be set together",
      );
    }
  }).describe("A service: its callbacks and delivery rules.");
}
