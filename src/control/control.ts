/**
 * The server API (SPEC section 13): what a backend asks Shark of its
 * connections, through `POST /presence`, `/disconnect` and `/unsubscribe`
 * or the engine's methods of the same names. A read of the members goes to
 * the presence store, which holds every node's; a command that ends
 * connections or subscriptions is published on the control topic
 * (`CONTROL_TOPIC`), which every engine subscribes at start, so that each
 * node runs it on its own sessions.
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import type { SharkConfig } from "../config/config.ts";
import type { Lifecycle } from "../session/lifecycle.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { Presence, PresenceSummary } from "../presence/presence.ts";
import { CloseReason, CONTROL_TOPIC, ErrorText, HttpErrorText } from "../protocol.ts";
import type { PubSub } from "../pubsub/pubsub.ts";
import type { Session } from "../session/session.ts";
import {
  type Command,
  commandPayload,
  disconnectCommand,
  parseCommand,
  presenceNamed,
  ServerApiError,
  targets,
  unsubscribeCommand,
} from "./command.ts";

export {
  type DisconnectOptions,
  ServerApiError,
  type SessionTarget,
  type UnsubscribeOptions,
} from "./command.ts";

/** What the server API works with. */
export interface ServerApiOptions {
  readonly config: SharkConfig;
  readonly pubsub: PubSub;
  readonly presence: Presence;
  /** This node's open sessions. */
  readonly sessions: Iterable<Session>;
  readonly lifecycle: Lifecycle;
  readonly metrics: Metrics;
  readonly log: Logger;
}

/**
 * The server API of one engine.
 *
 * @example
 * ```ts
 * const api = new ServerApi({ config, pubsub, presence, sessions, lifecycle, metrics, log });
 * await pubsub.subscribe(CONTROL_TOPIC); // its payloads go to api.receive
 * await api.disconnect({ match: { user_id: "u1" }, reconnect: true });
 * ```
 */
export class ServerApi {
  readonly #options: ServerApiOptions;

  constructor(options: ServerApiOptions) {
    this.#options = options;
  }

  /**
   * The members of the topic `body.subscription` names, on every node.
   * Throws a {@link ServerApiError}:
   * 400 for an invalid name or service or one without presence, 503 when the
   * store cannot be read.
   */
  async presence(body: unknown): Promise<PresenceSummary> {
    const { config, metrics, presence, log } = this.#options;
    const [name, settings] = this.#counted("presence", () => presenceNamed(body, config.services));
    try {
      const summary = await presence.read(name, settings);
      metrics.serverApiCommand("presence", "ok");
      return summary;
    } catch (error) {
      metrics.serverApiCommand("presence", "unavailable");
      log.warn("{error}", { error: error instanceof Error ? error.message : String(error) });
      throw new ServerApiError(503, ErrorText.serviceUnavailable);
    }
  }

  /** Publishes a `disconnect` command; see `Engine.disconnect`. */
  async disconnect(options: unknown): Promise<void> {
    await this.#publish(this.#counted("disconnect", () => disconnectCommand(options)));
  }

  /** Publishes an `unsubscribe` command; see `Engine.unsubscribe`. */
  async unsubscribe(options: unknown): Promise<void> {
    const services = this.#options.config.services;
    await this.#publish(this.#counted("unsubscribe", () => unsubscribeCommand(options, services)));
  }

  /** Runs a command taken from the control topic on this node's sessions. */
  receive(payload: string): void {
    const { config, metrics, log } = this.#options;
    const command = parseCommand(payload, config.services);
    if (!command) {
      metrics.serverApiCommand("control", "malformed");
      log.warn("not a server API command on {topic}: {payload}", {
        topic: CONTROL_TOPIC,
        payload: payload.slice(0, 200),
      });
      return;
    }
    metrics.serverApiCommand(command.command, "received");
    if (command.command === "disconnect") this.#disconnect(command);
    else this.#unsubscribe(command);
  }

  /** Validates a call, counting an invalid one. */
  #counted<T>(command: string, validate: () => T): T {
    try {
      return validate();
    } catch (error) {
      this.#options.metrics.serverApiCommand(command, "invalid");
      throw error;
    }
  }

  async #publish(command: Command): Promise<void> {
    const { pubsub, metrics, log } = this.#options;
    try {
      await pubsub.publish(CONTROL_TOPIC, commandPayload(command));
    } catch (error) {
      metrics.serverApiCommand(command.command, "unavailable");
      log.error("server API {command} not published: {error}", {
        command: command.command,
        error: String(error),
      });
      throw new ServerApiError(503, HttpErrorText.pubsubUnavailable);
    }
    metrics.serverApiCommand(command.command, "ok");
  }

  #disconnect(command: Command & { command: "disconnect" }): void {
    const reason = command.reconnect ? CloseReason.disconnectedReconnect : CloseReason.disconnected;
    const matching = [...this.#options.sessions].filter((session) =>
      targets(command.target, session)
    );
    for (const session of matching) session.close(reason);
    if (matching.length > 0) this.#options.metrics.serverApiEnded("connections", matching.length);
  }

  #unsubscribe(command: Command & { command: "unsubscribe" }): void {
    const { sessions, lifecycle, metrics, log } = this.#options;
    let ended = 0;
    for (const session of sessions) {
      const subscription = session.subscriptions.get(command.subscription);
      if (!subscription || !targets(command.target, session)) continue;
      ended++;
      lifecycle.end(session, subscription, ErrorText.unsubscribed).catch((error) =>
        log.error("server API unsubscribe of {subscription} failed: {error}", {
          subscription: command.subscription,
          error: String(error),
        })
      );
    }
    if (ended > 0) metrics.serverApiEnded("subscriptions", ended);
  }
}
