/**
 * The CLI's HTTP client for service callbacks (SPEC section 2): HTTP/1.1
 * over `node:net`, kept-alive connections pooled per origin, one request
 * written as one string, the answer read by hand, and every try's timeout
 * on one shared timer. A try costs about a fifth of its CPU through `fetch`
 * (`deno run -A bench/callback_micro.ts`). `https:` URLs, and all of them
 * when a proxy is configured, go through `fetch`, which speaks TLS and
 * honours the proxy variables.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type {
  CallbackAnswer,
  CallbackHttp,
  CallbackRequest,
} from "../../src/callbacks/callback_http.ts";
import { timeoutError } from "../../src/callbacks/callback_http.ts";
import { FetchCallbackHttp } from "../../src/callbacks/fetch_http.ts";
import { type Clock, REAL_CLOCK } from "../../src/clock.ts";
import { CallbackConnection, type Endpoint, StaleConnection } from "./connection.ts";
import { Deadlines } from "../deadlines.ts";
import type { ResponseParser } from "./response_parser.ts";

/** An idle connection is closed after this long (`fetch`'s pool keeps one 90 s). */
export const IDLE_CONNECTION_MS = 60_000;

/** What one URL's requests share: the pool of its origin and the head up to the length. */
interface Route {
  readonly pool: Pool;
  /** The headers object the head was built from. */
  readonly headers: Readonly<Record<string, string>>;
  /** `POST /path HTTP/1.1` and every header field but the length, then `content-length: `. */
  readonly head: string;
}

/** The connections of one origin. */
class Pool {
  readonly endpoint: Endpoint;
  readonly all = new Set<CallbackConnection>();
  /** Idle connections, the most recently used last. */
  readonly #idle: CallbackConnection[] = [];

  constructor(endpoint: Endpoint) {
    this.endpoint = endpoint;
  }

  /** An idle connection, or a new one when `fresh` or when none is idle. */
  take(fresh: boolean): CallbackConnection {
    while (!fresh && this.#idle.length > 0) {
      const connection = this.#idle.pop()!;
      if (connection.reusable) return connection;
    }
    const connection = new CallbackConnection(this.endpoint, (gone) => this.#forget(gone));
    this.all.add(connection);
    return connection;
  }

  /** A connection whose request settled: kept idle when it can carry another. */
  give(connection: CallbackConnection, now: number): boolean {
    if (!connection.reusable) return false;
    connection.idleSince = now;
    this.#idle.push(connection);
    return true;
  }

  /** Closes the connections idle since before `before`; whether any stays idle. */
  sweep(before: number): boolean {
    // The least recently used are first.
    while (this.#idle.length > 0 && this.#idle[0].idleSince < before) {
      this.#idle.shift()!.fail(new Error("idle too long"));
    }
    return this.#idle.length > 0;
  }

  #forget(connection: CallbackConnection): void {
    this.all.delete(connection);
    const index = this.#idle.indexOf(connection);
    if (index >= 0) this.#idle.splice(index, 1);
  }
}

/** Options of a {@link NetCallbackHttp}. */
export interface NetCallbackHttpOptions {
  /** Carries the requests to URLs that are not `http:` (default `fetch`). */
  readonly fallback?: CallbackHttp;
  /** The timeouts' and idle connections' time; the runtime's by default. */
  readonly clock?: Clock;
}

/**
 * Service callbacks over kept-alive `node:net` connections.
 *
 * @example
 * ```ts
 * const shark = new Shark(config, { callbackHttp: new NetCallbackHttp() });
 * ```
 */
export class NetCallbackHttp implements CallbackHttp {
  readonly #routes = new Map<string, Route>();
  readonly #pools = new Map<string, Pool>();
  readonly #fallback: CallbackHttp;
  readonly #clock: Clock;
  readonly #deadlines: Deadlines;
  #sweeper: unknown;
  #closed = false;

  constructor(options: NetCallbackHttpOptions = {}) {
    this.#fallback = options.fallback ?? new FetchCallbackHttp();
    this.#clock = options.clock ?? REAL_CLOCK;
    this.#deadlines = new Deadlines(this.#clock);
  }

  /** Connections open now (busy or idle), over every origin. */
  get connections(): number {
    let count = 0;
    for (const pool of this.#pools.values()) count += pool.all.size;
    return count;
  }

  async post(request: CallbackRequest): Promise<CallbackAnswer> {
    if (this.#closed) throw new DOMException("the client is closed", "AbortError");
    const route = this.#route(request);
    if (!route) return await this.#fallback.post(request);
    const text = `${route.head}${Buffer.byteLength(request.body)}\r\n\r\n${request.body}`;
    let connection = route.pool.take(false);
    const deadline = this.#deadlines.add(
      request.timeoutMs,
      () => connection.fail(timeoutError()),
    );
    let parser: ResponseParser;
    try {
      try {
        parser = await connection.request(text, request.maxBytes);
      } catch (error) {
        if (!(error instanceof StaleConnection) || deadline.done) throw error;
        connection = route.pool.take(true);
        parser = await connection.request(text, request.maxBytes);
      }
    } finally {
      this.#deadlines.settle(deadline);
    }
    if (route.pool.give(connection, this.#clock.now())) this.#sweepLater();
    const head = parser.head!;
    const ok = head.status >= 200 && head.status <= 299;
    return {
      status: head.status,
      header: (name) => head.fields.get(name.toLowerCase()) ?? null,
      body: ok ? parser.text() : "",
    };
  }

  close(): void {
    this.#closed = true;
    this.#deadlines.clear();
    this.#clock.clearTimeout(this.#sweeper);
    const closed = new DOMException("the client is closed", "AbortError");
    for (const pool of this.#pools.values()) {
      for (const connection of pool.all) connection.fail(closed);
    }
    this.#fallback.close();
  }

  /** The route of an `http:` URL; `undefined` for any other. */
  #route(request: CallbackRequest): Route | undefined {
    const known = this.#routes.get(request.url);
    if (known?.headers === request.headers) return known;
    const url = new URL(request.url);
    if (url.protocol !== "http:") return undefined;
    const origin = url.host;
    let pool = this.#pools.get(origin);
    if (!pool) {
      const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
      this.#pools.set(origin, pool = new Pool({ host, port: Number(url.port || 80) }));
    }
    let head = `POST ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${origin}\r\n`;
    for (const [name, value] of Object.entries(request.headers)) head += `${name}: ${value}\r\n`;
    const route = { pool, headers: request.headers, head: `${head}content-length: ` };
    this.#routes.set(request.url, route);
    return route;
  }

  /** Closes connections idle for {@link IDLE_CONNECTION_MS}, while any is idle. */
  #sweepLater(): void {
    if (this.#sweeper !== undefined) return;
    this.#sweeper = this.#clock.setTimeout(() => {
      this.#sweeper = undefined;
      const before = this.#clock.now() - IDLE_CONNECTION_MS;
      let idle = false;
      for (const pool of this.#pools.values()) idle = pool.sweep(before) || idle;
      if (idle) this.#sweepLater();
    }, IDLE_CONNECTION_MS);
  }
}

/** The environment variables that send `fetch` through a proxy. */
const PROXY_VARIABLES = ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"];

/**
 * The CLI's callback client: {@link NetCallbackHttp}, unless the environment
 * names a proxy for `http:` URLs, which only `fetch` knows to use.
 */
export function callbackHttpFor(env: (name: string) => string | undefined): CallbackHttp {
  const proxied = PROXY_VARIABLES.some((name) => (env(name) ?? "") !== "");
  return proxied ? new FetchCallbackHttp() : new NetCallbackHttp();
}
