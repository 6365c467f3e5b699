/**
 * Shark's own WebSocket server (SPEC section 9, "Transports"), over
 * `node:net` / `node:tls` (see `connection.ts` for why not `Deno.listen`):
 * it reads each connection's request head (within `server.handshake_timeout`
 * and a size limit), hands upgrades to the handler as a `Request` with
 * {@link upgradeWebSocket} in place of `Deno.upgradeWebSocket`, and plain
 * requests to the runtime's HTTP server. The handler (the engine's
 * `handle`) cannot tell it from `Deno.serve`.
 *
 * @module
 */
import net from "node:net";
import tls from "node:tls";
import type { WebSocketConnection } from "./connection.ts";
import { Deadlines } from "../deadlines.ts";
import { REAL_CLOCK } from "../../src/clock.ts";
import type { TransportFailure } from "./failure.ts";
import { TransportScheduler } from "./scheduler.ts";
import {
  errorResponse,
  type HeadError,
  headRequest,
  isUpgrade,
  parseHead,
  type RequestHead,
  responseBytes,
  switchingProtocols,
  toRequest,
  upgradeProblem,
} from "./handshake.ts";
import { type Handler, PlainHttp } from "./plain_http.ts";
import { MAX_HEAD_BYTES, readHead } from "./read_head.ts";
import { type PendingUpgrade, upgrades } from "./upgrade.ts";
import type { Gateway, UpgradeRequest } from "../../src/socket.ts";

export type { Handler } from "./plain_http.ts";
export { upgradeWebSocket } from "./upgrade.ts";

/**
 * Connections the kernel may hold for the server before it accepts them
 * (capped by `net.core.somaxconn`). The runtime's default, 511, overflows
 * when thousands of clients reconnect at once: each dropped SYN is sent
 * again only after a second (`deno task bench storm`: 5,000 clients, connect
 * phase 1,102 conn/s with 511).
 */
export const LISTEN_BACKLOG = 4096;

/** Why the server dropped a connection before it became a WebSocket or got an answer. */
export type DropReason = "handshake_timeout" | "bad_request";

/** Options of {@link TransportServer.listen}. */
export interface TransportOptions {
  readonly hostname: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** Share the port with other isolates or processes (`SO_REUSEPORT`). */
  readonly reusePort?: boolean;
  /** PEM certificate chain and key: serve `wss://` and `https://`. */
  readonly tls?: { readonly cert: string; readonly key: string };
  /** `server.handshake_timeout` in seconds: a request (or upgrade) must be complete within it. */
  readonly handshakeTimeout: number;
  /** `server.max_message_bytes`. */
  readonly maxMessageBytes: number;
  /** Called once listening. */
  readonly onListen?: (addr: Deno.NetAddr) => void;
  /** Told of every connection dropped before it was answered. */
  readonly onDrop?: (reason: DropReason) => void;
  /** Told when a WebSocket is ended by the transport itself (protocol error, keep-alive lost). */
  readonly onFail?: (failure: TransportFailure) => void;
  /**
   * What this isolate's connections share; by default one of the server's
   * own, whose writer the start-up self-check chooses.
   */
  readonly scheduler?: TransportScheduler;
  /**
   * Where upgrade requests go, as their header fields alone (the engine's
   * `upgrade`): no `Request` is built for them. Without it the handler gets
   * every request, upgrades too, as a `Request`.
   */
  readonly upgrade?: UpgradeHandler;
  /**
   * Asked before a plain (not TLS) connection is read (the engine's
   * catch-up gate, `admission`): it stays unread, its request in the
   * kernel's buffers, until let in. Its upgrade reaches the `upgrade`
   * handler with `admitted` true; a connection let in that is no upgrade
   * gives its place back with `unused()`.
   */
  readonly admission?: Gateway;
}

/**
 * Answers an upgrade request given by its header fields (the engine's
 * `upgrade`); `admitted`: the connection holds a place from the `admission` gate.
 */
export type UpgradeHandler = (
  request: UpgradeRequest,
  info: { readonly remoteAddr: Deno.NetAddr },
  admitted: boolean,
) => Response | Promise<Response>;

/** The options a server runs with: its scheduler chosen. */
type ServerOptions = TransportOptions & { readonly scheduler: TransportScheduler };

/**
 * A listening transport.
 *
 * @example
 * ```ts
 * await TransportServer.listen(
 *   { hostname: "127.0.0.1", port: 0, handshakeTimeout: 10, maxMessageBytes: 65536 },
 *   (request) => {
 *     const { socket, response } = upgradeWebSocket(request, { idleTimeout: 30 });
 *     socket.addEventListener("message", (event) => socket.send((event as MessageEvent).data));
 *     return response;
 *   },
 * );
 * ```
 */
export class TransportServer {
  /** The address listened on. */
  readonly addr: Deno.NetAddr;
  /** Settles once the server has stopped accepting and every connection has ended. */
  readonly finished: Promise<void>;
  readonly #listener: net.Server;
  readonly #handler: Handler;
  readonly #options: ServerOptions;
  readonly #plain: PlainHttp;
  readonly #sockets = new Set<WebSocketConnection>();
  readonly #handshakes = new Set<net.Socket>();
  /** Connections let in by the `admission` gate whose upgrade has not reached the handler. */
  readonly #admitted = new WeakSet<net.Socket>();
  /** TCP connections whose TLS handshake is not done yet, by client address. */
  readonly #tlsPending = new Map<string, net.Socket>();
  /** The handshake timeouts, on one timer. */
  readonly #deadlines = new Deadlines(REAL_CLOCK);
  #closing = false;
  #drained: (() => void) | undefined;

  private constructor(
    listener: net.Server,
    handler: Handler,
    options: ServerOptions,
    finished: Promise<void>,
  ) {
    this.#listener = listener;
    this.#handler = handler;
    this.#options = options;
    const { address, port } = listener.address() as net.AddressInfo;
    this.addr = { transport: "tcp", hostname: address, port };
    this.#plain = new PlainHttp(handler, {
      timeoutMs: options.handshakeTimeout * 1000,
      maxHeadBytes: MAX_HEAD_BYTES,
      scheme: options.tls ? "https" : "http",
      onTimeout: () => options.onDrop?.("handshake_timeout"),
    });
    listener.on(options.tls ? "secureConnection" : "connection", (conn: net.Socket) => {
      if (options.tls) this.#tlsPending.delete(clientKey(conn));
      if (this.#closing) conn.destroy();
      else if (options.admission && !options.tls) this.#admitThenServe(conn, options.admission);
      else this.#serve(conn).catch(() => this.#forget(conn, true));
    });
    if (options.tls) listener.on("connection", (raw: net.Socket) => this.#awaitTls(raw));
    options.onListen?.(this.addr);
    this.finished = finished;
  }

  /** Listens and serves every connection with `handler`. */
  static async listen(options: TransportOptions, handler: Handler): Promise<TransportServer> {
    const scheduler = options.scheduler ?? await TransportScheduler.start();
    const listener = options.tls
      ? tls.createServer({ cert: options.tls.cert, key: options.tls.key })
      : net.createServer({ pauseOnConnect: options.admission !== undefined });
    // Ends once the listener is closed and every connection it accepted is gone.
    const finished = new Promise<void>((resolve) => listener.once("close", () => resolve()));
    await new Promise<void>((resolve, reject) => {
      listener.once("error", reject);
      listener.listen(
        {
          host: options.hostname,
          port: options.port,
          reusePort: options.reusePort,
          backlog: LISTEN_BACKLOG,
        },
        () => {
          listener.off("error", reject);
          resolve();
        },
      );
    });
    // A connection reset before it was served: nothing to do.
    listener.on("error", () => {});
    return new TransportServer(listener, handler, { ...options, scheduler }, finished);
  }

  /** What this server's connections share (its writer among them). */
  get scheduler(): TransportScheduler {
    return this.#options.scheduler;
  }

  /** WebSocket connections open now. */
  get connections(): number {
    return this.#sockets.size;
  }

  /**
   * Stops accepting, lets the runtime's HTTP server finish its requests and
   * waits until every WebSocket has closed (the engine closes them first).
   */
  async shutdown(): Promise<void> {
    this.#closing = true;
    this.#listener.close();
    this.#plain.close();
    for (const conn of this.#handshakes) conn.destroy();
    for (const raw of this.#tlsPending.values()) raw.destroy();
    this.#handshakes.clear();
    this.#deadlines.clear();
    if (this.#sockets.size > 0) await new Promise<void>((resolve) => this.#drained = resolve);
    await this.finished;
  }

  /**
   * `node:tls` never drops a connection whose TLS handshake does not even
   * start: the TCP connection gets `handshake_timeout` for it.
   */
  #awaitTls(raw: net.Socket): void {
    const key = clientKey(raw);
    this.#tlsPending.set(key, raw);
    const timer = setTimeout(() => {
      if (this.#tlsPending.get(key) !== raw) return;
      this.#tlsPending.delete(key);
      this.#options.onDrop?.("handshake_timeout");
      raw.destroy();
    }, this.#options.handshakeTimeout * 1000);
    raw.once("close", () => {
      clearTimeout(timer);
      if (this.#tlsPending.get(key) === raw) this.#tlsPending.delete(key);
    });
  }

  #forget(conn: net.Socket, close: boolean): void {
    this.#handshakes.delete(conn);
    if (close) conn.destroy();
  }

  /**
   * Reads `conn` once `gate` lets it in. While it waits it is in
   * `#handshakes` (shutdown destroys it) but has no deadline: the gate
   * bounds its wait (`handshake_timeout`), and its deadline starts when it
   * is read.
   */
  async #admitThenServe(conn: net.Socket, gate: Gateway): Promise<void> {
    const wait = gate.enter();
    if (wait) {
      this.#handshakes.add(conn);
      await wait;
      if (conn.destroyed || this.#closing) {
        gate.unused();
        this.#forget(conn, true);
        return;
      }
    }
    this.#admitted.add(conn);
    conn.resume();
    this.#serve(conn).catch(() => this.#forget(conn, true)).finally(() => {
      // Still here: it never reached the upgrade handler.
      if (this.#admitted.delete(conn)) gate.unused();
    });
  }

  async #serve(conn: net.Socket): Promise<void> {
    this.#handshakes.add(conn);
    let timedOut = false;
    const deadline = this.#deadlines.add(this.#options.handshakeTimeout * 1000, () => {
      timedOut = true;
      this.#options.onDrop?.("handshake_timeout");
      this.#forget(conn, true);
    });
    let received: Uint8Array;
    let end: number;
    try {
      ({ received, end } = await readHead(conn));
    } catch {
      if (!timedOut) this.#forget(conn, true);
      return;
    } finally {
      this.#deadlines.settle(deadline);
    }
    if (end < 0) {
      this.#options.onDrop?.("bad_request");
      await this.#refuse(conn, { status: 431, message: "Request head too large." });
      return;
    }
    const head = parseHead(received.subarray(0, end));
    if ("status" in head) {
      this.#options.onDrop?.("bad_request");
      await this.#refuse(conn, head);
      return;
    }
    if (!isUpgrade(head)) {
      this.#forget(conn, false);
      this.#plain.serve(conn, received);
      return;
    }
    await this.#upgrade(conn, head, received.subarray(end));
  }

  async #upgrade(conn: net.Socket, head: RequestHead, leftover: Uint8Array): Promise<void> {
    const problem = upgradeProblem(head);
    const upgradeHandler = this.#options.upgrade;
    const request = problem
      ? undefined
      : upgradeHandler
      ? headRequest(head)
      : toRequest(head, this.#options.tls ? "https" : "http");
    if (!request) {
      this.#options.onDrop?.("bad_request");
      await this.#refuse(conn, problem ?? { status: 400, message: "Bad request target." });
      return;
    }
    const pending: PendingUpgrade = {
      conn,
      options: this.#options,
      key: head.fields.find(([name]) => name === "sec-websocket-key")![1],
      leftover: leftover.slice(),
    };
    upgrades.set(request, pending);
    let response: Response;
    try {
      // Looked up only when the engine reads it (a log line, a per-address limit).
      const info = {
        get remoteAddr() {
          return remoteAddr(conn);
        },
      };
      const admitted = this.#admitted.delete(conn);
      response = await (upgradeHandler
        ? upgradeHandler(request, info, admitted)
        : this.#handler(request as Request, info));
    } catch {
      response = Response.json({ status: "error", error: "Internal error." }, { status: 500 });
    }
    upgrades.delete(request);
    const accepted = pending.accepted;
    if (!accepted || accepted.response !== response || this.#closing) {
      await this.#refuse(conn, response);
      return;
    }
    this.#forget(conn, false);
    const socket = accepted.socket;
    this.#sockets.add(socket);
    socket.addEventListener("close", () => {
      this.#sockets.delete(socket);
      if (this.#sockets.size === 0) this.#drained?.();
    });
    socket.open(switchingProtocols(pending.key), pending.leftover);
  }

  /** Answers with `response` (or a {@link HeadError}) and closes the connection. */
  async #refuse(conn: net.Socket, response: Response | HeadError): Promise<void> {
    this.#handshakes.delete(conn);
    try {
      const bytes = await responseBytes(
        response instanceof Response ? response : errorResponse(response),
      );
      // The answer goes out, then the socket closes (or at once, when the client is gone).
      conn.end(bytes, () => conn.destroy());
    } catch {
      conn.destroy();
    }
  }
}

/** A connection's client address and port: the same for a TLS socket and its TCP connection. */
function clientKey(conn: net.Socket): string {
  return `${conn.remoteAddress}:${conn.remotePort}`;
}

/** The client's address, as `Deno.serve` gives it to a handler. */
function remoteAddr(conn: net.Socket): Deno.NetAddr {
  return { transport: "tcp", hostname: conn.remoteAddress ?? "", port: conn.remotePort ?? 0 };
}
