/**
 * Counters and gauges of one Shark engine, kept as plain numbers so that the
 * delivery hot path only adds to a field, and rendered in the Prometheus text
 * format (SPEC section 7) or as a flat object for the `log` provider.
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
  | "held_overflow";

/** Why an upgrade was refused. */
export type RejectReason = "max_connections" | "origin" | "not_ready";

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

class LatencyHistogram {
  readonly counts: number[] = new Array(LATENCY_BUCKETS.length).fill(0);
  count = 0;
  sum = 0;

  observe(seconds: number): void {
    this.count++;
    this.sum += seconds;
    for (let i = 0; i < LATENCY_BUCKETS.length; i++) {
      if (seconds <= LATENCY_BUCKETS[i]) {
        this.counts[i]++;
        return;
      }
    }
  }
}

function labelled(map: Map<string, number>, key: string, by = 1): void {
  map.set(key, (map.get(key) ?? 0) + by);
}

/** Counts by two labels without building a key string per count. */
type Table = Map<string, Map<string, number>>;

function tabled(table: Table, first: string, second: string): void {
  let row = table.get(first);
  if (!row) table.set(first, row = new Map());
  row.set(second, (row.get(second) ?? 0) + 1);
}

/** The label values and count of every cell of a one- or two-label counter. */
function cells(counts: Map<string, number> | Table): [string[], number][] {
  const out: [string[], number][] = [];
  for (const [first, value] of counts) {
    if (typeof value === "number") out.push([[first], value]);
    else for (const [second, count] of value) out.push([[first, second], count]);
  }
  return out;
}

function escapeLabel(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`));
}

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
  /** Envelopes this process published with a position (services with `history`). */
  historyPublished = 0;
  /** Recovered envelopes sent to subscriptions (before the rules of SPEC section 4). */
  replayed = 0;
  readonly #recoveries = new Map<string, number>();
  readonly #events: Table = new Map();
  readonly #dropped = new Map<string, number>();
  readonly #rejected = new Map<string, number>();
  readonly #closed = new Map<string, number>();
  readonly #callbacks: Table = new Map();
  readonly #latency = new Map<string, LatencyHistogram>();

  /** Counts a client event by name and outcome (`ok` or `error`). */
  event(name: string, outcome: "ok" | "error"): void {
    tabled(this.#events, name, outcome);
  }

  /** Counts messages not delivered, by reason. */
  dropped(reason: DropReason, count = 1): void {
    labelled(this.#dropped, reason, count);
  }

  /** Counts a subscribe with `recover` on a service with history, by outcome. */
  recovery(outcome: "recovered" | "not_recovered"): void {
    labelled(this.#recoveries, outcome);
  }

  /** Counts a refused upgrade, by reason. */
  rejected(reason: RejectReason): void {
    labelled(this.#rejected, reason);
  }

  /** Counts a connection closed by Shark, by reason. */
  closed(reason: string): void {
    labelled(this.#closed, reason);
  }

  /** Counts one service callback with its outcome and duration. */
  callback(name: string, outcome: "ok" | "error" | "unavailable", seconds: number): void {
    tabled(this.#callbacks, name, outcome);
    let histogram = this.#latency.get(name);
    if (!histogram) this.#latency.set(name, histogram = new LatencyHistogram());
    histogram.observe(seconds);
  }

  /** The metrics in the Prometheus text exposition format. */
  prometheus(): string {
    const lines: string[] = [];
    const metric = (name: string, type: string, help: string) =>
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    const gauge = (name: string, help: string, value: number) => {
      metric(name, "gauge", help);
      lines.push(`${name} ${value}`);
    };
    const counter = (name: string, help: string, value: number) => {
      metric(name, "counter", help);
      lines.push(`${name} ${value}`);
    };
    const byLabels = (
      name: string,
      help: string,
      labels: string[],
      counts: Map<string, number> | Table,
    ) => {
      metric(name, "counter", help);
      for (const [values, count] of cells(counts)) {
        const text = labels.map((label, i) => `${label}="${escapeLabel(values[i])}"`).join(",");
        lines.push(`${name}{${text}} ${count}`);
      }
    };
    gauge("shark_ready", "1 when Shark accepts connections and pub/sub is healthy", this.ready);
    gauge("shark_connections_open", "Client connections open", this.connectionsOpen);
    counter("shark_connections_total", "Client connections accepted", this.connectionsTotal);
    byLabels(
      "shark_connections_rejected_total",
      "Upgrades refused",
      ["reason"],
      this.#rejected,
    );
    byLabels(
      "shark_connections_closed_total",
      "Connections closed by Shark, by reason",
      ["reason"],
      this.#closed,
    );
    byLabels(
      "shark_events_total",
      "Client events by name and outcome",
      ["event", "outcome"],
      this.#events,
    );
    gauge("shark_subscriptions_open", "Subscriptions held by sessions", this.subscriptionsOpen);
    gauge("shark_topics_open", "Topics subscribed on the pub/sub adapter", this.topicsOpen);
    counter("shark_pubsub_received_total", "Envelopes taken from pub/sub", this.received);
    counter("shark_published_total", "Envelopes accepted by /publish or publish()", this.published);
    gauge("shark_fanout_queue", "Envelopes waiting to be fanned out", this.queued);
    counter("shark_messages_delivered_total", "Messages sent to clients", this.delivered);
    byLabels(
      "shark_messages_dropped_total",
      "Messages not delivered, by reason",
      ["reason"],
      this.#dropped,
    );
    counter(
      "shark_history_published_total",
      "Envelopes published with a position",
      this.historyPublished,
    );
    byLabels(
      "shark_recoveries_total",
      "Subscribes with recover, by outcome",
      ["outcome"],
      this.#recoveries,
    );
    counter("shark_history_replayed_total", "Recovered envelopes replayed", this.replayed);
    byLabels(
      "shark_callbacks_total",
      "Service callbacks by callback and outcome",
      ["callback", "outcome"],
      this.#callbacks,
    );
    metric("shark_callback_duration_seconds", "histogram", "Service callback latency");
    for (const [name, histogram] of this.#latency) {
      const label = `callback="${escapeLabel(name)}"`;
      let cumulative = 0;
      LATENCY_BUCKETS.forEach((bound, i) => {
        cumulative += histogram.counts[i];
        lines.push(`shark_callback_duration_seconds_bucket{${label},le="${bound}"} ${cumulative}`);
      });
      lines.push(
        `shark_callback_duration_seconds_bucket{${label},le="+Inf"} ${histogram.count}`,
        `shark_callback_duration_seconds_sum{${label}} ${histogram.sum}`,
        `shark_callback_duration_seconds_count{${label}} ${histogram.count}`,
      );
    }
    return lines.join("\n") + "\n";
  }

  /** A flat copy of every counter, for the `log` metrics provider. */
  snapshot(): Record<string, number> {
    const flat: Record<string, number> = {
      ready: this.ready,
      connections_open: this.connectionsOpen,
      connections_total: this.connectionsTotal,
      subscriptions_open: this.subscriptionsOpen,
      topics_open: this.topicsOpen,
      pubsub_received: this.received,
      published: this.published,
      fanout_queue: this.queued,
      delivered: this.delivered,
      history_published: this.historyPublished,
      history_replayed: this.replayed,
    };
    const add = (prefix: string, counts: Map<string, number> | Table) => {
      for (const [values, count] of cells(counts)) flat[[prefix, ...values].join(".")] = count;
    };
    add("events", this.#events);
    add("dropped", this.#dropped);
    add("rejected", this.#rejected);
    add("closed", this.#closed);
    add("callbacks", this.#callbacks);
    add("recoveries", this.#recoveries);
    return flat;
  }
}
