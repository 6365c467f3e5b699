/**
 * Shark's own WebSocket server (SPEC section 9, "Transports"), over
 * `Deno.listen` / `Deno.listenTls`: it reads each connection's request head
 * (within `server.handshake_timeout` and a size limit), hands upgrades to the
 * handler as a `Request` with {@link upgradeWebSocket} in
 * place of `Deno.upgradeWebSocket`, and plain requests to the runtime's HTTP
 * server. The handler (the engine's `handle`) cannot tell it from `Deno.serve`.
 *
 * @module
 */
import { WebSocketConnection } from "./connection.ts";
import {
  errorResponse,
  headEnd,
  type HeadError,
  isUpgrade,
  parseHead,
  type RequestHead,
  responseBytes,
  switchingProtocols,
  toRequest,
  upgradeProblem,
} from "./handshake.ts";
import { type Handler, PlainHttp, writeAll } from "./plain_http.ts";

export type { Handler } from "./plain_http.ts";

/** The largest request head (request line and header fields) accepted: Node's default. */
export const MAX_HEAD_BYTES = 16 * 1024;

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
  readonly onFail?: (code: number, reason: string) => void;
}

interface PendingUpgrade {
  readonly conn: Deno.Conn;
  readonly options: TransportOptions;
  readonly key: string;
  readonly leftover: Uint8Array;
  accepted?: { readonly socket: WebSocketConnection; readonly response: Response };
}

/** Upgrade requests of every server in this isolate, while their handler runs. */
const upgrades = new WeakMap<Request, PendingUpgrade>();

/**
 * `Deno.upgradeWebSocket` for the requests of a {@link TransportServer}
 * (any of this isolate's): the socket opens once the handler returns
 * `response`. Throws a `TypeError` for any other request.
 *
 * @example
 * ```ts
 * const shark = new Shark(config, { upgradeWebSocket });
 * TransportServer.listen(options, (request, info) => shark.handle(request, info));
 * ```
 */
export function upgradeWebSocket(
  request: Request,
  options: { idleTimeout?: number } = {},
): { socket: WebSocketConnection; response: Response } {
  const pending = upgrades.get(request);
  if (!pending || pending.accepted) {
    throw new TypeError("not a WebSocket upgrade request of this transport");
  }
  const socket = new WebSocketConnection(pending.conn, {
    maxMessageBytes: pending.options.maxMessageBytes,
    idleTimeout: options.idleTimeout ?? 120,
    onFail: pending.options.onFail,
  });
  // A placeholder: a Response cannot have status 101; the server writes the real answer.
  const response = new Response(null, { status: 200 });
  pending.accepted = { socket, response };
  return { socket, response };
}

/**
 * A listening transport.
 *
 * @example
 * ```ts
 * TransportServer.listen(
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
  readonly #listener: Deno.Listener;
  readonly #handler: Handler;
  readonly #options: TransportOptions;
  readonly #plain: PlainHttp;
  readonly #sockets = new Set<WebSocketConnection>();
  readonly #handshakes = new Set<Deno.Conn>();
  #closing = false;
  #drained: (() => void) | undefined;

  private constructor(listener: Deno.Listener, handler: Handler, options: TransportOptions) {
    this.#listener = listener;
    this.#handler = handler;
    this.#options = options;
    this.addr = listener.addr as Deno.NetAddr;
    this.#plain = new PlainHttp(handler, {
      timeoutMs: options.handshakeTimeout * 1000,
      maxHeadBytes: MAX_HEAD_BYTES,
      scheme: options.tls ? "https" : "http",
      onTimeout: () => options.onDrop?.("handshake_timeout"),
    });
    options.onListen?.(this.addr);
    this.finished = this.#accept();
  }

  /** Listens and serves every connection with `handler`. */
  static listen(options: TransportOptions, handler: Handler): TransportServer {
    const address = {
      hostname: options.hostname,
      port: options.port,
      reusePort: options.reusePort,
    };
    const listener = options.tls
      ? Deno.listenTls({ ...address, cert: options.tls.cert, key: options.tls.key })
      : Deno.listen({ ...address, transport: "tcp" });
    return new TransportServer(listener, handler, options);
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
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
    this.#plain.close();
    for (const conn of this.#handshakes) conn.close();
    this.#handshakes.clear();
    if (this.#sockets.size > 0) await new Promise<void>((resolve) => this.#drained = resolve);
    await this.finished;
  }

  async #accept(): Promise<void> {
    while (!this.#closing) {
      let conn: Deno.Conn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (this.#closing || error instanceof Deno.errors.BadResource) return;
        // Out of file descriptors, or a connection reset before it was accepted: go on.
        await new Promise((resolve) => setTimeout(resolve, 10));
        continue;
      }
      this.#serve(conn).catch(() => this.#forget(conn, true));
    }
  }

  #forget(conn: Deno.Conn, close: boolean): void {
    this.#handshakes.delete(conn);
    if (!close) return;
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }

  async #serve(conn: Deno.Conn): Promise<void> {
    this.#handshakes.add(conn);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      this.#options.onDrop?.("handshake_timeout");
      this.#forget(conn, true);
    }, this.#options.handshakeTimeout * 1000);
    let received: Uint8Array;
    let end: number;
    try {
      ({ received, end } = await readHead(conn));
    } catch {
      if (!timedOut) this.#forget(conn, true);
      return;
    } finally {
      clearTimeout(timer);
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

  async #upgrade(conn: Deno.Conn, head: RequestHead, leftover: Uint8Array): Promise<void> {
    const problem = upgradeProblem(head);
    const request = problem ? undefined : toRequest(head, this.#options.tls ? "https" : "http");
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
      response = await this.#handler(request, { remoteAddr: conn.remoteAddr as Deno.NetAddr });
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
  async #refuse(conn: Deno.Conn, response: Response | HeadError): Promise<void> {
    try {
      const bytes = await responseBytes(
        response instanceof Response ? response : errorResponse(response),
      );
      await writeAll(conn, bytes);
    } catch {
      // The client is gone.
    }
    this.#forget(conn, true);
  }
}

/**
 * Reads until the end of the request head: `end` is its size (-1 when it
 * exceeds {@link MAX_HEAD_BYTES}); `received` is everything read so far.
 */
async function readHead(conn: Deno.Conn): Promise<{ received: Uint8Array; end: number }> {
  let buffer = new Uint8Array(4096);
  let length = 0;
  for (;;) {
    if (length === buffer.byteLength) {
      if (length >= MAX_HEAD_BYTES) return { received: buffer, end: -1 };
      const larger = new Uint8Array(Math.min(buffer.byteLength * 2, MAX_HEAD_BYTES));
      larger.set(buffer);
      buffer = larger;
    }
    const read = await conn.read(buffer.subarray(length));
    if (read === null) throw new Error("connection closed before its request head");
    const end = headEnd(buffer.subarray(0, length + read), length);
    length += read;
    if (end >= 0) return { received: buffer.subarray(0, length), end };
  }
}
