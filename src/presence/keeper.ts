/**
 * When this node refreshes its members (SPEC section 12): every `ttl/3`
 * seconds for each service with `presence`, each topic of that service this
 * node has members in is refreshed, on the injected clock. A round still
 * running when the next is due is not overlapped: the store is slow, and
 * more calls would only queue behind it.
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import type { PresenceConfig, ServiceConfig } from "../config/config.ts";

/** What the keeper needs of this node's presence (`Presence` in `presence.ts`). */
export interface Refreshable {
  /** The topics this node has members in now. */
  topics(): Iterable<string>;
  /** Refreshes one topic; never rejects. */
  refresh(topic: string, presence: PresenceConfig): Promise<void>;
}

/** One service's refresh cycle. */
interface Cycle {
  /** `SERVICE.`: the start of the service's topics. */
  readonly prefix: string;
  readonly presence: PresenceConfig;
  /** Whether a round of refreshes is still in progress. */
  running: boolean;
  timer: unknown;
}

/**
 * Refreshes the topics this node has members in, per service, every `ttl/3`.
 *
 * @example
 * ```ts
 * const keeper = new PresenceKeeper(presence, config.services, clock);
 * keeper.start();
 * // at shutdown:
 * keeper.close();
 * ```
 */
export class PresenceKeeper {
  readonly #presence: Refreshable;
  readonly #services: Readonly<Record<string, ServiceConfig>>;
  readonly #clock: Clock;
  readonly #cycles: Cycle[] = [];
  #closed = false;

  constructor(
    presence: Refreshable,
    services: Readonly<Record<string, ServiceConfig>>,
    clock: Clock,
  ) {
    this.#presence = presence;
    this.#services = services;
    this.#clock = clock;
  }

  /** Starts one refresh cycle per service with `presence`. */
  start(): void {
    for (const [name, service] of Object.entries(this.#services)) {
      if (!service.presence) continue;
      const cycle = { prefix: `${name}.`, presence: service.presence, running: false, timer: 0 };
      this.#cycles.push(cycle);
      this.#schedule(cycle);
    }
  }

  /** Stops every cycle; a round in progress finishes. */
  close(): void {
    this.#closed = true;
    for (const cycle of this.#cycles) this.#clock.clearTimeout(cycle.timer);
  }

  #schedule(cycle: Cycle): void {
    cycle.timer = this.#clock.setTimeout(() => this.#tick(cycle), cycle.presence.ttl * 1000 / 3);
  }

  #tick(cycle: Cycle): void {
    if (this.#closed) return;
    this.#schedule(cycle);
    if (cycle.running) return;
    const topics = [...this.#presence.topics()].filter((topic) => topic.startsWith(cycle.prefix));
    if (topics.length === 0) return;
    cycle.running = true;
    Promise.all(topics.map((topic) => this.#presence.refresh(topic, cycle.presence)))
      .finally(() => cycle.running = false);
  }
}
