/**
 * Counters and gauges of one Shark engine, kept as plain numbers so that the
 * delivery hot path only adds to a field, and rendered in the Prometheus text
 * format (SPEC section 7) or as a flat object for the `log` provider.
 *
 * @module
 */
import { LatencyHistogram } from "./histogram.ts";
import { type ByOne, type ByTwo, cells, countOne, countTwo, escapeLabel } from "./counts.ts";
import type { AuthOutcome, DropReason, LimitName, RejectReason } from "./labels.ts";

export type { AuthOutcome, DropReason, LimitName, RejectReason } from "./labels.ts";

/** The counters with labels, by their snapshot key prefix. */
interface LabelledCounts {
  readonly rejected: ByOne;
  readonly closed: ByOne;
  readonly events: ByTwo;
  readonly auth: ByTwo;
  readonly dropped: ByOne;
  readonly limited: ByOne;
  readonly recoveries: ByOne;
  readonly callbacks: ByTwo;
}

/** A plain number field of {@link Metrics}. */
type Field = { [K in keyof Metrics]: Metrics[K] extends number ? K : never }[keyof Metrics];

/** One metric: its exposition name and help, and where its value comes from. */
type Row =
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
const ROWS: readonly Row[] = [
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
];

const LATENCY = "shark_callback_duration_seconds";

/**
 * The metrics of one engine. Fields are public so that the engine can count
 * with a plain `++`; {@link Metrics.prometheus} renders them.
 *
 * @example
 * ```ts
 * const metrics = new Metrics();
 * metrics.delivered += 10;
 * console.log(metrics.prometheus());
 * ```
 */
export class Metrics {
  /** 1 when the engine accepts connections and its pub/sub is healthy. */
  ready = 0;
  /** Client connections open now. */
  connectionsOpen = 0;
  /** Client connections accepted since start. */
  connectionsTotal = 0;
  /** Subscriptions held by all sessions now. */
  subscriptionsOpen = 0;
  /** Distinct topics subscribed on the pub/sub adapter now. */
  topicsOpen = 0;
  /** Envelopes taken from the pub/sub adapter. */
  received = 0;
  /** Frames handed to client sockets for published messages. */
  delivered = 0;
  /** Envelopes accepted by `POST /publish` or `publish()`. */
  published = 0;
  /** Envelopes waiting to be fanned out now. */
  queued = 0;
  /** The JSON text length of the envelopes waiting to be fanned out now. */
  queuedBytes = 0;
  /** Envelopes this process published with a position (services with `history`). */
  historyPublished = 0;
  /** Recovered envelopes handed to subscriptions (before the rules of SPEC section 4). */
  replayed = 0;
  /** Service callbacks waiting for a slot of `http.max_concurrent` now. */
  callbacksQueued = 0;
  readonly #labelled: LabelledCounts = {
    rejected: new Map(),
    closed: new Map(),
    events: new Map(),
    auth: new Map(),
    dropped: new Map(),
    limited: new Map(),
    recoveries: new Map(),
    callbacks: new Map(),
  };
  readonly #latency = new Map<string, LatencyHistogram>();

  /** Counts a client event by name and outcome (`ok` or `error`). */
  event(name: string, outcome: "ok" | "error"): void {
    countTwo(this.#labelled.events, name, outcome);
  }

  /** Counts an `auth` event by method (`other` for an unknown one) and outcome. */
  auth(method: string, outcome: AuthOutcome): void {
    countTwo(this.#labelled.auth, method, outcome);
  }

  /** Counts messages not delivered, by reason. */
  dropped(reason: DropReason, count = 1): void {
    countOne(this.#labelled.dropped, reason, count);
  }

  /** Counts a limit applied. */
  limited(limit: LimitName): void {
    countOne(this.#labelled.limited, limit);
  }

  /** Counts a subscribe with `recover` on a service with history, by outcome. */
  recovery(outcome: "recovered" | "not_recovered"): void {
    countOne(this.#labelled.recoveries, outcome);
  }

  /** Counts a refused connection (see {@link RejectReason}). */
  rejected(reason: RejectReason): void {
    countOne(this.#labelled.rejected, reason);
  }

  /** Counts a connection closed by Shark, by reason. */
  closed(reason: string): void {
    countOne(this.#labelled.closed, reason);
  }

  /** Counts one service callback with its outcome and duration. */
  callback(
    name: string,
    outcome: "ok" | "error" | "unavailable" | "cancelled",
    seconds: number,
  ): void {
    countTwo(this.#labelled.callbacks, name, outcome);
    let histogram = this.#latency.get(name);
    if (!histogram) this.#latency.set(name, histogram = new LatencyHistogram());
    histogram.observe(seconds);
  }

  /** The metrics in the Prometheus text exposition format. */
  prometheus(): string {
    const lines: string[] = [];
    const header = (name: string, type: string, help: string) =>
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const row of ROWS) {
      header(row.name, row.type, row.help);
      if ("field" in row) {
        lines.push(`${row.name} ${this[row.field]}`);
        continue;
      }
      for (const [values, count] of cells(this.#labelled[row.key])) {
        const text = row.labels.map((label, i) => `${label}="${escapeLabel(values[i])}"`);
        lines.push(`${row.name}{${text.join(",")}} ${count}`);
      }
    }
    header(LATENCY, "histogram", "Service callback latency");
    for (const [name, histogram] of this.#latency) {
      lines.push(...histogram.exposition(LATENCY, `callback="${escapeLabel(name)}"`));
    }
    return lines.join("\n") + "\n";
  }

  /** A flat copy of every counter, for the `log` metrics provider. */
  snapshot(): Record<string, number> {
    const flat: Record<string, number> = {};
    for (const row of ROWS) {
      if ("field" in row) {
        flat[row.key] = this[row.field];
        continue;
      }
      for (const [values, count] of cells(this.#labelled[row.key])) {
        flat[[row.key, ...values].join(".")] = count;
      }
    }
    return flat;
  }
}
