/**
 * Counters and gauges of one Shark engine, kept as plain numbers so that the
 * delivery hot path only adds to a field, and rendered in the Prometheus text
 * format (SPEC section 7) or as a flat object for the `log` provider.
 *
 * @module
 */
import { LatencyHistogram } from "./histogram.ts";
import { cells, countOne, countTwo, escapeLabel } from "./counts.ts";
import type {
  AuthOutcome,
  DropReason,
  LimitName,
  PresenceOutcome,
  RejectReason,
  ServerApiOutcome,
} from "./labels.ts";
import { type LabelledCounts, ROWS } from "./rows.ts";

export type {
  AuthOutcome,
  DropReason,
  LimitName,
  PresenceOutcome,
  RejectReason,
  ServerApiOutcome,
} from "./labels.ts";

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
  /** Connections waiting at the catch-up gate now (`server.catch_up_sessions`). */
  catchUpWaiting = 0;
  /** Connections that waited at the catch-up gate since start. */
  catchUpWaited = 0;
  /** Service callbacks waiting for a slot of `http.max_concurrent` now. */
  callbacksQueued = 0;
  /** Presence members held by this node's subscriptions now (SPEC section 12). */
  presenceMembers = 0;
  /** Members of stopped nodes this node removed from the store, with their leaves. */
  presenceExpired = 0;
  readonly #labelled: LabelledCounts = {
    rejected: new Map(),
    closed: new Map(),
    events: new Map(),
    auth: new Map(),
    dropped: new Map(),
    limited: new Map(),
    recoveries: new Map(),
    callbacks: new Map(),
    presenceEvents: new Map(),
    presenceRequests: new Map(),
    serverApiCommands: new Map(),
    serverApiEnded: new Map(),
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

  /** Counts a `join` or `leave` frame sent to a client. */
  presenceSent(event: "join" | "leave"): void {
    countOne(this.#labelled.presenceEvents, event);
  }

  /** Counts a presence read (a `presence` event or `POST /presence`) by outcome. */
  presenceRequest(outcome: PresenceOutcome): void {
    countOne(this.#labelled.presenceRequests, outcome);
  }

  /** Counts a server API command (SPEC section 13) by name and outcome. */
  serverApiCommand(command: string, outcome: ServerApiOutcome): void {
    countTwo(this.#labelled.serverApiCommands, command, outcome);
  }

  /** Counts the connections or subscriptions that server API commands ended here. */
  serverApiEnded(what: "connections" | "subscriptions", count: number): void {
    countOne(this.#labelled.serverApiEnded, what, count);
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
