/**
 * Plain HTTP requests on the transport's port (`/healthz`, `/publish`, 404,
 * 426): the socket, with the bytes already read from it put back, is handed to the
 * runtime's own HTTP/1.1 server (`node:http`, which parses chunked bodies,
 * keep-alive and limits), in this process and without a second TCP hop. Its
 * requests are answered by the same handler as the upgrades, as `Request`
 * and `Response`.
 *
 * @module
 */
import http from "node:http";
import type { Socket } from "node:net";
import { type Duplex, Readable } from "node:stream";

/** Answers one request, as a `Deno.serve` handler does. */
export type Handler = (
  request: Request,
  info: { readonly remoteAddr: Deno.NetAddr },
) => Response | Promise<Response>;

/** Options of {@link PlainHttp}. */
export interface PlainHttpOptions {
  /** A request must be complete (head and body) within this long; a keep-alive connection idles at most this long. */
  readonly timeoutMs: number;
  /** The largest request head. */
  readonly maxHeadBytes: number;
  /** `https` under TLS. */
  readonly scheme: "http" | "https";
  /** Told when a request was not complete in time and its connection was closed. */
  readonly onTimeout: () => void;
}

function plainResponse(status: string, text: string): string {
  return `HTTP/1.1 ${status}\r\ncontent-type: application/json\r\ncontent-length: ${text.length}\r\nconnection: close\r\n\r\n${text}`;
}

/** The runtime's HTTP server, fed with connections instead of listening. */
export class PlainHttp {
  readonly #server: http.Server;
  readonly #handler: Handler;
  readonly #options: PlainHttpOptions;
  #open = true;

  constructor(handler: Handler, options: PlainHttpOptions) {
    this.#handler = handler;
    this.#options = options;
    this.#server = http.createServer({
      requestTimeout: options.timeoutMs,
      headersTimeout: options.timeoutMs,
      keepAliveTimeout: options.timeoutMs,
      maxHeaderSize: options.maxHeadBytes,
      connectionsCheckingInterval: Math.max(100, Math.min(1000, options.timeoutMs / 4)),
    }, (request, response) => {
      this.#serve(request, response).catch(() => response.destroy());
    });
    // This server never listens: it is handed connections. node:http checks
    // headersTimeout and requestTimeout once it has emitted "listening", and
    // keeps a connection alive between requests only while `listening` is true.
    Object.defineProperty(this.#server, "listening", { get: () => this.#open });
    this.#server.emit("listening");
    this.#server.on("clientError", (error: NodeJS.ErrnoException, socket: Duplex) => {
      const code = error.code ?? "";
      if (code === "ERR_HTTP_REQUEST_TIMEOUT") options.onTimeout();
      if (socket.writable && code !== "ECONNRESET") {
        socket.end(
          code === "ERR_HTTP_REQUEST_TIMEOUT"
            ? plainResponse("408 Request Timeout", '{"status":"error","error":"Request timeout."}')
            : code === "HPE_HEADER_OVERFLOW"
            ? plainResponse(
              "431 Request Header Fields Too Large",
              '{"status":"error","error":"Request head too large."}',
            )
            : plainResponse("400 Bad Request", '{"status":"error","error":"Bad request."}'),
        );
      }
      socket.destroy();
    });
    // An upgrade asked for on a connection that already carried plain
    // requests: clients open a new connection for a WebSocket, so this one is refused.
    this.#server.on("upgrade", (_request: http.IncomingMessage, socket: Duplex) => {
      socket.end(plainResponse(
        "400 Bad Request",
        '{"status":"error","error":"Open a new connection for a WebSocket upgrade."}',
      ));
    });
  }

  /** Serves `conn` (paused), whose first `received` bytes were already read. */
  serve(conn: Socket, received: Uint8Array): void {
    conn.unshift(received);
    this.#server.emit("connection", conn);
    conn.resume();
  }

  /** Closes connections that wait for a request; the others close after their response. */
  close(): void {
    this.#open = false;
    this.#server.close();
    this.#server.closeIdleConnections();
  }

  async #serve(incoming: http.IncomingMessage, outgoing: http.ServerResponse): Promise<void> {
    const socket = incoming.socket;
    let response: Response;
    try {
      response = await this.#handler(this.#request(incoming), {
        remoteAddr: { transport: "tcp", hostname: socket.remoteAddress!, port: socket.remotePort! },
      });
    } catch (error) {
      const bad = error instanceof TypeError;
      response = Response.json(
        { status: "error", error: bad ? "Bad request." : "Internal error." },
        { status: bad ? 400 : 500 },
      );
    }
    const headers: [string, string][] = [...response.headers];
    outgoing.writeHead(response.status, response.statusText || undefined, headers.flat());
    if (response.body && incoming.method !== "HEAD") {
      for await (const chunk of response.body) outgoing.write(chunk);
    }
    outgoing.end();
  }

  #request(incoming: http.IncomingMessage): Request {
    const headers = new Headers();
    const raw = incoming.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) headers.append(raw[i], raw[i + 1]);
    const method = incoming.method ?? "GET";
    const url = `${this.#options.scheme}://${incoming.headers.host ?? "localhost"}${incoming.url}`;
    const body = method === "GET" || method === "HEAD"
      ? undefined
      : Readable.toWeb(incoming) as ReadableStream<Uint8Array>;
    return new Request(url, { method, headers, body, duplex: "half" } as RequestInit);
  }
}
