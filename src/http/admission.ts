/**
 * Who may open a connection (SPEC sections 7 and 8): the checks an upgrade
 * passes before it becomes a session, in this order: readiness,
 * `allowed_origins`, `max_connections`, `max_connections_per_address` and the
 * memory guard `max_memory_bytes`. Each refusal is answered with its HTTP
 * status and counted in `shark_connections_rejected_total` by reason.
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import type { ServerConfig } from "../config/config.ts";
import { errorResponse } from "./respond.ts";
import type { Metrics } from "../metrics/metrics.ts";
import { HttpErrorText } from "../protocol.ts";
import type { UpgradeRequest } from "../socket.ts";

/**
 * The resident memory of the process in bytes, as the runtime measures it
 * (`Deno.memoryUsage().rss`); web-standard APIs have no such reading, so the
 * runtime's wiring passes it in.
 */
export type MemoryUsage = () => number;

/** What {@link Admission} needs of the engine. */
export interface AdmissionOptions {
  /** The `server` section. */
  readonly server: ServerConfig;
  readonly metrics: Metrics;
  /** Told at start when `server.max_memory_bytes` is set but cannot be measured. */
  readonly log: Logger;
  /** The memory reading of `server.max_memory_bytes`; without one, the guard is off. */
  readonly memoryUsage?: MemoryUsage;
}

/** What the engine knows of an upgrade when it asks whether to accept it. */
export interface Candidate {
  /** Whether the engine accepts connections at all (started, pub/sub healthy, not stopping). */
  readonly ready: boolean;
  /** Connections open now. */
  readonly open: number;
  /** The client's address (`info.remoteAddr.hostname`), when the runtime told it. */
  readonly address: string | undefined;
}

/**
 * Decides upgrades and counts the connections of each client address.
 *
 * @example
 * ```ts
 * const admission = new Admission({ server: config.server, metrics, log });
 * const refused = admission.refusal(request, { ready: true, open: 0, address: "10.0.0.7" });
 * if (refused) return refused;
 * admission.admit(session, "10.0.0.7");
 * ```
 */
export class Admission {
  readonly #server: ServerConfig;
  readonly #metrics: Metrics;
  readonly #memoryUsage: MemoryUsage | undefined;
  /** Open connections by client address, when `max_connections_per_address` is set. */
  readonly #perAddress = new Map<string, number>();
  /** The address each of those connections was counted under. */
  readonly #addressOf = new Map<object, string>();

  constructor(options: AdmissionOptions) {
    this.#server = options.server;
    this.#metrics = options.metrics;
    this.#memoryUsage = options.memoryUsage;
    if (this.#server.max_memory_bytes !== null && !this.#memoryUsage) {
      options.log.warn(
        "server.max_memory_bytes is not enforced: this runtime gives no memory reading",
      );
    }
  }

  /** Whether upgrades need the client's address (`max_connections_per_address` is set). */
  get countsAddresses(): boolean {
    return this.#server.max_connections_per_address !== null;
  }

  /** The answer refusing this upgrade, or `undefined` when it may proceed. */
  refusal(request: UpgradeRequest, candidate: Candidate): Response | undefined {
    const server = this.#server;
    if (!candidate.ready) {
      this.#metrics.rejected("not_ready");
      return errorResponse(503, HttpErrorText.notReady);
    }
    const allowed = server.allowed_origins;
    const origin = request.headers.get("origin");
    if (allowed && origin !== null && !allowed.includes(origin)) {
      this.#metrics.rejected("origin");
      return errorResponse(403, HttpErrorText.originNotAllowed);
    }
    if (server.max_connections !== null && candidate.open >= server.max_connections) {
      this.#metrics.rejected("max_connections");
      return errorResponse(503, HttpErrorText.tooManyConnections);
    }
    const perAddress = server.max_connections_per_address;
    const address = candidate.address;
    if (
      perAddress !== null && address !== undefined &&
      (this.#perAddress.get(address) ?? 0) >= perAddress
    ) {
      this.#metrics.rejected("max_connections_per_address");
      return errorResponse(429, HttpErrorText.tooManyFromAddress);
    }
    const maxMemory = server.max_memory_bytes;
    if (maxMemory !== null && this.#memoryUsage && this.#memoryUsage() > maxMemory) {
      this.#metrics.rejected("max_memory");
      return errorResponse(503, HttpErrorText.lowOnMemory, { "retry-after": "5" });
    }
    return undefined;
  }

  /** Counts an accepted connection under its client's address until {@link release}. */
  admit(connection: object, address: string | undefined): void {
    if (this.#server.max_connections_per_address === null || address === undefined) return;
    this.#perAddress.set(address, (this.#perAddress.get(address) ?? 0) + 1);
    this.#addressOf.set(connection, address);
  }

  /** Frees the slot of a closed connection at once. */
  release(connection: object): void {
    const address = this.#addressOf.get(connection);
    if (address === undefined) return;
    this.#addressOf.delete(connection);
    const left = this.#perAddress.get(address)! - 1;
    if (left === 0) this.#perAddress.delete(address);
    else this.#perAddress.set(address, left);
  }
}
