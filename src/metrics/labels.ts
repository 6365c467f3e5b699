/**
 * The label values of Shark's counters (SPEC section 7, `metrics.ts`): why a
 * message was not delivered, why an upgrade was refused, how an `auth` ended
 * and which limit was applied. Dashboards and alerts match these strings.
 *
 * @module
 */

/** Why a published message did not reach a subscriber. */
export type DropReason =
  | "filter"
  | "order"
  | "throttle_replaced"
  | "slow_consumer"
  | "invalid"
  | "held_overflow"
  | "queue_full";

/**
 * How an `auth` event ended: `ok`; `failed` (credentials missing or refused);
 * `unavailable` (the ticket service could not be reached); `unsupported`
 * (the method is not configured).
 */
export type AuthOutcome = "ok" | "failed" | "unavailable" | "unsupported";

/** Why a connection was refused: at the upgrade, or before it on the CLI's own transport. */
export type RejectReason =
  | "max_connections"
  | "max_connections_per_address"
  | "max_memory"
  | "origin"
  | "not_ready"
  | "handshake_timeout"
  | "bad_request";

/** A limit applied: a subscribe refused, an `order_key` or `throttle_key` forgotten. */
export type LimitName = "max_subscriptions" | "order_keys" | "throttle_keys";

/**
 * How a presence read of the store ended (refusals before it are counted
 * with their event or command): `ok`, or `unavailable` (it failed).
 */
export type PresenceOutcome = "ok" | "unavailable";

/**
 * How a server API command ended: `ok` (answered, or handed to the adapter);
 * `invalid` (refused with 400); `unavailable` (the adapter or the store
 * failed); `received`, `malformed` (a command taken from the control topic,
 * run here, or dropped as not one).
 */
export type ServerApiOutcome = "ok" | "invalid" | "unavailable" | "received" | "malformed";
