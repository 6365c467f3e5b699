/**
 * One kept-alive connection to a service's origin over `node:net`: one
 * request at a time, its response read by a {@link ResponseParser}, then
 * back to its pool, unless the response or the service said the connection
 * cannot carry another.
 *
 * @module
 */
import net from "node:net";
import { ResponseParser } from "./response_parser.ts";

/**
 * A reused connection ended before any byte of its answer arrived: the
 * service closed it while it was idle, so the request is sent again on a
 * new connection.
 */
export class StaleConnection extends Error {
  override readonly name = "StaleConnection";
}

/** Where a connection goes: a host name or address (IPv6 without brackets) and a port. */
export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

/**
 * A connection to one origin.
 *
 * @example
 * ```ts
 * const connection = new CallbackConnection({ host: "127.0.0.1", port: 8000 }, () => {});
 * const parser = await connection.request(
 *   "POST /auth HTTP/1.1\r\nhost: 127.0.0.1:8000\r\ncontent-length: 2\r\n\r\n{}",
 *   4096,
 * );
 * ```
 */
export class CallbackConnection {
  /** Requests answered on it so far. */
  served = 0;
  /** When it was last handed back idle (`performance.now()`). */
  idleSince = 0;
  readonly #socket: net.Socket;
  readonly #onGone: (connection: CallbackConnection) => void;
  #parser: ResponseParser | undefined;
  #resolve: ((parser: ResponseParser) => void) | undefined;
  #reject: ((error: Error) => void) | undefined;
  #reusable = true;
  #gone = false;

  /** @param onGone told once, when the connection has closed for good. */
  constructor(endpoint: Endpoint, onGone: (connection: CallbackConnection) => void) {
    this.#onGone = onGone;
    const socket = this.#socket = net.connect({ host: endpoint.host, port: endpoint.port });
    socket.setNoDelay(true);
    socket.on("data", (chunk: Uint8Array) => this.#onData(chunk));
    socket.on("end", () => this.#onEnd());
    socket.on("error", (error: Error) => this.fail(this.#stale() ?? error));
    socket.on("close", () => this.#onClose());
  }

  /** Whether it may carry another request once idle. */
  get reusable(): boolean {
    return this.#reusable && !this.#gone;
  }

  /**
   * Sends one request (head and body as one string) and resolves with its
   * complete response; a non-2xx response resolves once its head is read
   * (its body is not needed) and closes the connection.
   */
  request(text: string, maxBodyBytes: number): Promise<ResponseParser> {
    this.#parser = new ResponseParser(maxBodyBytes);
    const { promise, resolve, reject } = Promise.withResolvers<ResponseParser>();
    this.#resolve = resolve;
    this.#reject = reject;
    this.#socket.write(text);
    return promise;
  }

  /** Ends the connection; the request in flight, if any, rejects with `error`. */
  fail(error: Error): void {
    this.#reusable = false;
    const reject = this.#reject;
    this.#settled();
    this.#socket.destroy();
    reject?.(error);
  }

  #onData(chunk: Uint8Array): void {
    const parser = this.#parser;
    if (!parser) {
      // Nothing was asked: a connection that talks out of turn is not trusted again.
      this.fail(new Error("data from an idle connection"));
      return;
    }
    let complete: boolean;
    try {
      complete = parser.feed(chunk);
    } catch (error) {
      this.fail(error as Error);
      return;
    }
    const head = parser.head;
    if (!complete && !(head && (head.status < 200 || head.status > 299))) return;
    if (!complete || !head!.keepAlive || parser.extra) this.#reusable = false;
    this.#complete(parser);
  }

  #onEnd(): void {
    const parser = this.#parser;
    this.#reusable = false;
    if (!parser) return;
    try {
      parser.end();
    } catch (error) {
      this.fail(this.#stale() ?? error as Error);
      return;
    }
    this.#complete(parser);
  }

  #onClose(): void {
    if (this.#reject) {
      this.fail(
        this.#stale() ?? new Error("the connection closed before the response was complete"),
      );
    }
    if (this.#gone) return;
    this.#gone = true;
    this.#onGone(this);
  }

  /** A {@link StaleConnection} when the request in flight may be sent again elsewhere. */
  #stale(): StaleConnection | undefined {
    const parser = this.#parser;
    if (!parser || parser.received || this.served === 0) return undefined;
    return new StaleConnection("the kept-alive connection was closed by the service");
  }

  #complete(parser: ResponseParser): void {
    const resolve = this.#resolve!;
    this.#settled();
    this.served++;
    if (!this.#reusable) this.#socket.destroy();
    resolve(parser);
  }

  #settled(): void {
    this.#parser = undefined;
    this.#resolve = undefined;
    this.#reject = undefined;
  }
}
