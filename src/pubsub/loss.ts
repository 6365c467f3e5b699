/**
 * What losing pub/sub means for the sessions: the whole backend (SPEC
 * section 5: every session closed with 1012, upgrades refused until it is
 * back) or one shard of a Redis Cluster (SPEC section 14: only the sessions
 * holding a topic of that shard without history are closed; after the shard
 * is served again each history topic is caught up from its history, and the
 * sessions of a topic that cannot be caught up are closed with 1012).
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import type { SharkConfig } from "../config/config.ts";
import type { Hub } from "../delivery/hub.ts";
import { serviceOf } from "../delivery/subscription_name.ts";
import { CloseReason } from "../protocol.ts";
import type { Sessions } from "../session/sessions.ts";

/** Where an engine stands. */
export type EngineState = "starting" | "ready" | "degraded" | "failed" | "stopping";

/** What a {@link PubSubLoss} acts on. */
export interface PubSubLossOptions {
  readonly config: SharkConfig;
  readonly hub: Hub;
  readonly sessions: Sessions;
  readonly log: Logger;
  /** The adapter's name, for logs. */
  readonly adapter: string;
  /** The engine's state now. */
  state(): EngineState;
  /** Moves the engine to `state`. */
  setState(state: EngineState): void;
}

/** Applies the loss rules of SPEC sections 5 and 14 to an engine's sessions. */
export class PubSubLoss {
  readonly #options: PubSubLossOptions;

  constructor(options: PubSubLossOptions) {
    this.#options = options;
  }

  /** The whole backend was lost or is back (SPEC section 5). */
  health(healthy: boolean, reason?: string): void {
    const { state, setState, log, adapter, sessions } = this.#options;
    const now = state();
    if (now === "stopping" || now === "failed" || now === "starting") return;
    if (healthy) {
      if (now === "degraded") {
        log.info("pub/sub {adapter} is back: accepting connections", { adapter });
        setState("ready");
      }
      return;
    }
    if (now === "degraded") return;
    setState("degraded");
    log.error("pub/sub {adapter} lost ({reason}): closing {count} connections with 1012", {
      adapter,
      reason: reason ?? "unknown",
      count: sessions.size,
    });
    // At once, not after the unsubscribe callbacks: a socket kept open while
    // services that share the lost backend are slow would be a silent stall.
    for (const session of sessions) session.close(CloseReason.pubsubLost);
  }

  /** The shard of `topics` was lost: their sessions without history close with 1012. */
  lost(topics: readonly string[], reason: string): void {
    if (this.#options.state() !== "ready") return;
    const gone = new Set(topics.filter((topic) => !this.#hasHistory(topic)));
    const closing = this.#holding(gone);
    this.#options.log.error(
      "pub/sub shard lost ({reason}): {topics} topics unserved, closing {count} connections with 1012",
      { reason, topics: topics.length, count: closing.length },
    );
    for (const session of closing) session.close(CloseReason.pubsubLost);
  }

  /** `topics` were subscribed again: each history topic is caught up from its history. */
  resubscribed(topics: readonly string[]): void {
    const { hub, log } = this.#options;
    for (const topic of topics.filter((each) => this.#hasHistory(each))) {
      hub.catchUp(topic).then(
        (caughtUp) => {
          if (caughtUp) return;
          log.warn("{topic}: history cannot be caught up, closing its connections with 1012", {
            topic,
          });
          for (const session of this.#holding(new Set([topic]))) {
            session.close(CloseReason.pubsubLost);
          }
        },
        (error) => log.warn("{topic}: catching up its history failed: {error}", { topic, error }),
      );
    }
  }

  #hasHistory(topic: string): boolean {
    return (this.#options.config.services[serviceOf(topic) ?? ""]?.history ?? null) !== null;
  }

  #holding(topics: ReadonlySet<string>) {
    return [...this.#options.sessions].filter((session) =>
      [...session.subscriptions.keys()].some((name) => topics.has(name))
    );
  }
}
