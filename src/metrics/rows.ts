/**
 * The table of Shark's metrics (SPEC sections 7, 10, 12 and 13): each one's
 * exposition name, help and type, and the field or labelled counter of
 * `Metrics` (`metrics.ts`) it is read from.
 *
 * @module
 */
import type { ByOne, ByTwo } from "./counts.ts";
import type { Metrics } from "./metrics.ts";

/** The counters with labels, by their snapshot key prefix. */
export interface LabelledCounts {
  readonly rejected: ByOne;
  readonly closed: ByOne;
  readonly events: ByTwo;
  readonly auth: ByTwo;
  readonly dropped: ByOne;
  readonly limited: ByOne;
  readonly recoveries: ByOne;
  readonly callbacks: ByTwo;
  readonly presenceEvents: ByOne;
  readonly presenceRequests: ByOne;
  readonly serverApiCommands: ByTwo;
  readonly serverApiEnded: ByOne;
}

/** A plain number field of {@link Metrics}. */
type Field = { [K in keyof Metrics]: Metrics[K] extends number ? K : never }[keyof Metrics];

/** One metric: its exposition name and help, and where its value comes from. */
export type Row =
  & { readonly name: string; readonly help: string }
  & (
    /** A number: `key` is its snapshot key. */
    | { readonly type: "gauge" | "counter"; readonly field: Field; readonly key: string }
    /** A counter with labels: its snapshot keys are `key.label-value...`. */
    | { readonly type: "counter"; readonly key: keyof LabelledCounts; readonly labels: string[] }
  );

/**
 * Every metric but the callback latency histogram, in exposition order: both
 * {@link Metrics.prometheus} and {@link Metrics.snapshot} render this table.
 */
export const ROWS: readonly Row[] = [
  {
    name: "shark_ready",
    help: "1 when Shark accepts connections and pub/sub is healthy",
    type: "gauge",
    field: "ready",
    key: "ready",
  },
  {
    name: "shark_connections_open",
    help: "Client connections open",
    type: "gauge",
    field: "connectionsOpen",
    key: "connections_open",
  },
  {
    name: "shark_connections_total",
    help: "Client connections accepted",
    type: "counter",
    field: "connectionsTotal",
    key: "connections_total",
  },
  {
    name: "shark_connections_rejected_total",
    help: "Connections refused, by reason",
    type: "counter",
    key: "rejected",
    labels: ["reason"],
  },
  {
    name: "shark_connections_closed_total",
    help: "Connections closed by Shark, by reason",
    type: "counter",
    key: "closed",
    labels: ["reason"],
  },
  {
    name: "shark_events_total",
    help: "Client events by name and outcome",
    type: "counter",
    key: "events",
    labels: ["event", "outcome"],
  },
  {
    name: "shark_auth_total",
    help: "auth events by method and outcome",
    type: "counter",
    key: "auth",
    labels: ["method", "outcome"],
  },
  {
    name: "shark_subscriptions_open",
    help: "Subscriptions held by sessions",
    type: "gauge",
    field: "subscriptionsOpen",
    key: "subscriptions_open",
  },
  {
    name: "shark_topics_open",
    help: "Topics subscribed on the pub/sub adapter",
    type: "gauge",
    field: "topicsOpen",
    key: "topics_open",
  },
  {
    name: "shark_pubsub_received_total",
    help: "Envelopes taken from pub/sub",
    type: "counter",
    field: "received",
    key: "pubsub_received",
  },
  {
    name: "shark_published_total",
    help: "Envelopes accepted by /publish or publish()",
    type: "counter",
    field: "published",
    key: "published",
  },
  {
    name: "shark_fanout_queue",
    help: "Envelopes waiting to be fanned out",
    type: "gauge",
    field: "queued",
    key: "fanout_queue",
  },
  {
    name: "shark_fanout_queue_bytes",
    help: "Bytes of envelope JSON waiting to be fanned out",
    type: "gauge",
    field: "queuedBytes",
    key: "fanout_queue_bytes",
  },
  {
    name: "shark_messages_delivered_total",
    help: "Messages sent to clients",
    type: "counter",
    field: "delivered",
    key: "delivered",
  },
  {
    name: "shark_messages_dropped_total",
    help: "Messages not delivered, by reason",
    type: "counter",
    key: "dropped",
    labels: ["reason"],
  },
  {
    name: "shark_limited_total",
    help: "Subscribes refused (max_subscriptions) and keys forgotten (order_keys, throttle_keys)",
    type: "counter",
    key: "limited",
    labels: ["limit"],
  },
  {
    name: "shark_history_published_total",
    help: "Envelopes published with a position",
    type: "counter",
    field: "historyPublished",
    key: "history_published",
  },
  {
    name: "shark_recoveries_total",
    help: "Subscribes with recover on a service with history, by outcome",
    type: "counter",
    key: "recoveries",
    labels: ["outcome"],
  },
  {
    name: "shark_history_replayed_total",
    help: "Recovered envelopes replayed to subscriptions",
    type: "counter",
    field: "replayed",
    key: "history_replayed",
  },
  {
    name: "shark_catch_up_waiting",
    help: "New connections held unread by the catch-up gate (server.catch_up_sessions)",
    type: "gauge",
    field: "catchUpWaiting",
    key: "catch_up_waiting",
  },
  {
    name: "shark_catch_up_waited_total",
    help: "New connections that waited at the catch-up gate",
    type: "counter",
    field: "catchUpWaited",
    key: "catch_up_waited",
  },
  {
    name: "shark_callbacks_queued",
    help: "Service callbacks waiting for one of the http.max_concurrent slots of their origin",
    type: "gauge",
    field: "callbacksQueued",
    key: "callbacks_queued",
  },
  {
    name: "shark_callbacks_total",
    help: "Service callbacks by callback and outcome",
    type: "counter",
    key: "callbacks",
    labels: ["callback", "outcome"],
  },
  {
    name: "shark_presence_members",
    help: "Presence members held by this node's subscriptions",
    type: "gauge",
    field: "presenceMembers",
    key: "presence_members",
  },
  {
    name: "shark_presence_events_total",
    help: "join and leave frames sent to clients, by event",
    type: "counter",
    key: "presenceEvents",
    labels: ["event"],
  },
  {
    name: "shark_presence_requests_total",
    help: "Presence reads (presence events, POST /presence) by outcome",
    type: "counter",
    key: "presenceRequests",
    labels: ["outcome"],
  },
  {
    name: "shark_presence_expired_total",
    help: "Members of stopped nodes removed by this node (their leaves sent)",
    type: "counter",
    field: "presenceExpired",
    key: "presence_expired",
  },
  {
    name: "shark_server_api_commands_total",
    help: "Server API commands (presence, disconnect, unsubscribe) by command and outcome",
    type: "counter",
    key: "serverApiCommands",
    labels: ["command", "outcome"],
  },
  {
    name: "shark_server_api_ended_total",
    help: "Connections and subscriptions ended on this node by server API commands",
    type: "counter",
    key: "serverApiEnded",
    labels: ["what"],
  },
];
