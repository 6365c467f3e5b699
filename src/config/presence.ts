/**
 * `presence` of a service (SPEC section 12): its keys with their defaults,
 * and the checks that need the whole configuration: what a member may show
 * must be an auth field of a configured method or one of the service's
 * `extra_fields`, and isolates of the `broadcast_channel` adapter share no
 * store to keep members in.
 *
 * @module
 */
import { z } from "zod";
import { fieldList } from "./fields.ts";
import type { PresenceConfig, SharkConfig } from "./types.ts";

/** `user_field` when a service names none: members without it have the user `""`. */
export const DEFAULT_USER_FIELD = "user_id";

/**
 * The schema of a service's `presence`. `user_field` stays `undefined` when
 * not written, so that only an explicit one is checked against the auth
 * fields; {@link withPresenceDefaults} fills it in afterwards.
 */
export const presenceSchema = z.strictObject({
  fields: fieldList.default([]).describe(
    "What other clients may see of a member: auth fields of a configured method and this service's extra_fields (the subscription's value wins). Nothing else is ever shown.",
  ),
  user_field: z.string().min(1).optional().describe(
    `The auth field naming a member's user, for "user" and the users count; default "${DEFAULT_USER_FIELD}". Set explicitly, it must be an auth field of a configured method.`,
  ).meta({ default: DEFAULT_USER_FIELD }),
  join_leave: z.boolean().default(true)
    .describe("Send join and leave events to the other subscribers of a topic."),
  ttl: z.number().min(5).max(3600).default(60).describe(
    "Seconds (5-3600) after which the members of a node that stopped without its graceful shutdown are removed.",
  ),
}).nullable().default(null).describe(
  "Who is subscribed to each topic: presence events, join and leave; null: off.",
);

/** The configuration as parsed, before {@link withPresenceDefaults}. */
type Parsed = Omit<SharkConfig, "services"> & {
  services: Record<
    string,
    Omit<SharkConfig["services"][string], "presence"> & {
      presence: (Omit<PresenceConfig, "user_field"> & { user_field?: string }) | null;
    }
  >;
};

/** The auth fields of every configured authentication method. */
function authFields(config: Parsed): Set<string> {
  const { ticket, jwt } = config.authentication;
  return new Set([...(ticket?.auth_fields ?? []), ...(jwt?.auth_fields ?? [])]);
}

/** Adds an issue for each `presence` key that names what a session cannot have. */
export function checkPresence(config: Parsed, ctx: z.RefinementCtx): void {
  const auth = authFields(config);
  for (const [name, service] of Object.entries(config.services)) {
    const presence = service.presence;
    if (presence === null) continue;
    const path = ["services", name, "presence"];
    if (config.pubsub.adapter === "broadcast_channel") {
      const message = "is not available with the broadcast_channel adapter (no shared store)";
      ctx.addIssue({ code: "custom", path, message });
    }
    for (const field of presence.fields) {
      if (auth.has(field) || service.extra_fields.includes(field)) continue;
      ctx.addIssue({
        code: "custom",
        path: [...path, "fields"],
        message: `${
          JSON.stringify(field)
        } is neither an auth field of a configured authentication method nor one of the service's extra_fields`,
      });
    }
    const user = presence.user_field;
    if (user !== undefined && !auth.has(user)) {
      ctx.addIssue({
        code: "custom",
        path: [...path, "user_field"],
        message: `${
          JSON.stringify(user)
        } is not an auth field of a configured authentication method`,
      });
    }
  }
}

/** The configuration with every service's `presence.user_field` filled in. */
export function withPresenceDefaults(config: Parsed): SharkConfig {
  // fromEntries, not assignment: a service named "__proto__" stays a plain key.
  const services = Object.fromEntries(
    Object.entries(config.services).map(([name, service]) => {
      const presence = service.presence;
      if (presence === null) return [name, { ...service, presence }];
      const user_field = presence.user_field ?? DEFAULT_USER_FIELD;
      return [name, { ...service, presence: { ...presence, user_field } }];
    }),
  );
  return { ...config, services };
}
