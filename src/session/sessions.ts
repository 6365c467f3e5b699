/**
 * The engine's open connections (SPEC sections 5, 7 and 8): accepting an
 * upgrade as a session (after `Admission`'s checks), watching it for
 * `server.idle_timeout`, and ending it, its subscriptions' callbacks
 * included, however it closed. Shutdown, pub/sub loss and the server API
 * close sessions through it.
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import { Admission, type MemoryUsage } from "../http/admission.ts";
import type { Clock } from "../clock.ts";
import type { SharkConfig } from "../config/config.ts";
import { errorResponse } from "../http/respond.ts";
import { IdleSweep } from "./idle.ts";
import { CatchUpGate, NO_PRESSURE, type Pressure } from "./catch_up_gate.ts";
import type { Lifecycle } from "./lifecycle.ts";
import type { Metrics } from "../metrics/metrics.ts";
import { type CloseReason, HttpErrorText } from "../protocol.ts";
import { type ClientFrame, Session, type SessionHost } from "./session.ts";
import {
  type Gateway,
  idleTimeoutOf,
  type UpgradeRequest,
  type UpgradeWebSocket,
} from "../socket.ts";

/** Connection details of a request, for logs. */
export interface RequestInfo {
  /** The client's address, as `Deno.serve` hands it to its handler. */
  readonly remoteAddr?: { readonly hostname?: string; readonly port?: number };
}

/** What {@link Sessions} is built from. */
export interface SessionsOptions {
  readonly config: SharkConfig;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly clock: Clock;
  readonly upgrade: UpgradeWebSocket;
  readonly lifecycle: Lifecycle;
  readonly memoryUsage?: MemoryUsage;
  /** Whether the runtime's I/O is behind: new connections may wait (see {@link CatchUpGate}). */
  readonly pressure?: Pressure;
  /** Handles one client event; never rejects. */
  handleEvent(session: Session, frame: ClientFrame): Promise<void>;
}

/**
 * The open sessions, and those closed whose unsubscribe callbacks still run.
 *
 * @example
 * ```ts
 * const sessions = new Sessions({ config, metrics, log, clock, upgrade, lifecycle, handleEvent });
 * Deno.serve((request) => sessions.accept(request, {}, () => true));
 * await sessions.closeAll(CloseReason.shutdown);
 * ```
 */
export class Sessions implements Iterable<Session> {
  readonly #open = new Set<Session>();
  /** Closed sessions whose unsubscribe callbacks still run: shutdown waits for them too. */
  readonly #closing = new Set<Session>();
  readonly #config: SharkConfig;
  readonly #metrics: Metrics;
  readonly #log: Logger;
  readonly #upgrade: UpgradeWebSocket;
  readonly #lifecycle: Lifecycle;
  readonly #admission: Admission;
  readonly #idle: IdleSweep | undefined;
  readonly #host: SessionHost;
  readonly #gate: CatchUpGate<Session>;

  constructor(options: SessionsOptions) {
    const { config, metrics, log, clock } = options;
    this.#config = config;
    this.#metrics = metrics;
    this.#log = log;
    this.#upgrade = options.upgrade;
    this.#lifecycle = options.lifecycle;
    this.#admission = new Admission({
      server: config.server,
      metrics,
      log,
      memoryUsage: options.memoryUsage,
    });
    const idleTimeout = config.server.idle_timeout;
    this.#idle = idleTimeout === null ? undefined : new IdleSweep(idleTimeout, clock);
    const catchUp = config.server.catch_up_sessions;
    const gate = this.#gate = new CatchUpGate<Session>({
      limit: catchUp ?? 1,
      // Without a reading of the runtime's I/O, or with catch_up_sessions null, it holds nobody.
      maxWaitMs: config.server.handshake_timeout * 1000,
      pressure: (catchUp !== null && options.pressure) || NO_PRESSURE,
      clock,
      onWait: (change) => {
        metrics.catchUpWaiting += change;
        if (change > 0) metrics.catchUpWaited++;
      },
    });
    this.#host = {
      busy: gate,
      metrics,
      clock,
      limits: {
        maxMessageBytes: config.server.max_message_bytes,
        maxBufferedBytes: config.server.max_buffered_bytes,
      },
      handleEvent: options.handleEvent,
      sessionClosed: (session: Session) => this.#closed(session),
    };
  }

  /** Sessions open now. */
  get size(): number {
    return this.#open.size;
  }

  /** The sessions open now. */
  [Symbol.iterator](): Iterator<Session> {
    return this.#open.values();
  }

  /**
   * Where a transport that holds new connections unread asks first (see
   * {@link CatchUpGate}): `enter()` resolves when one may be read, and the
   * place it takes is given back by {@link accept} with `admitted`, or by
   * `unused()` when the connection was no upgrade.
   */
  readonly admission: Gateway = {
    enter: () => this.#gate.enter(),
    unused: () => this.#gate.opened(undefined),
  };

  /**
   * Upgrades a request to a session, unless `Admission` refuses it (or the
   * engine is not `ready`, read when the request goes on). `request` goes to
   * the `upgrade` seam as it is: a `Request`, or the transport's own kind
   * that its seam knows. It first waits its turn at the catch-up gate,
   * unless `admitted` (its transport asked {@link admission} before reading it).
   */
  accept(
    request: UpgradeRequest,
    info: RequestInfo,
    ready: () => boolean,
    admitted = false,
  ): Response | Promise<Response> {
    const wait = admitted ? undefined : this.#gate.enter();
    if (!wait) return this.#openSession(request, info, ready());
    return wait.then(() => this.#openSession(request, info, ready()));
  }

  /** Opens the session, and gives its place at the gate to it (or back). */
  #openSession(request: UpgradeRequest, info: RequestInfo, ready: boolean): Response {
    // Read before the upgrade: the runtime's request info is gone after it.
    const logged = this.#log.isEnabledFor("info");
    const remoteAddr = logged || this.#admission.countsAddresses ? info.remoteAddr : undefined;
    const address = remoteAddr?.hostname;
    const refused = this.#admission.refusal(request, { ready, open: this.#open.size, address });
    if (refused) {
      this.#gate.opened(undefined);
      return refused;
    }
    const remote = logged && remoteAddr ? `${address}:${remoteAddr.port}` : undefined;
    const origin = logged ? request.headers.get("origin") : undefined;
    let upgraded: ReturnType<UpgradeWebSocket>;
    try {
      // The seam is typed for `Request`s; a transport's own kind is one its seam knows (else 400).
      upgraded = this.#upgrade(request as Request, {
        idleTimeout: idleTimeoutOf(this.#config.ws_ping),
      });
    } catch (error) {
      this.#gate.opened(undefined);
      return errorResponse(400, `${HttpErrorText.badUpgrade}: ${error}`);
    }
    const session = new Session(upgraded.socket, this.#host, this.#log);
    this.#gate.opened(session);
    this.#open.add(session);
    this.#admission.admit(session, address);
    this.#idle?.watch(session);
    this.#metrics.connectionsOpen++;
    this.#metrics.connectionsTotal++;
    // The base logger: a per-session logger context is only created when needed.
    if (logged) this.#log.info("connection opened", { session: session.id, remote, origin });
    return upgraded.response;
  }

  /**
   * Closes every session, and resolves once they and the sessions closed
   * just before have run their unsubscribe callbacks.
   */
  closeAll(reason: CloseReason): Promise<void> {
    const sessions = [...this.#open, ...this.#closing];
    return Promise.all(sessions.map((session) => session.close(reason))).then(() => {});
  }

  /** Stops watching for idle connections; lets every connection waiting at the gate go on. */
  close(): void {
    this.#idle?.close();
    this.#gate.close();
  }

  async #closed(session: Session): Promise<void> {
    if (this.#open.delete(session)) this.#metrics.connectionsOpen--;
    this.#admission.release(session);
    this.#closing.add(session);
    try {
      await Promise.all([session.idle(), this.#lifecycle.endAll(session)]);
    } finally {
      this.#closing.delete(session);
    }
  }
}
