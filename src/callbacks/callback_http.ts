/**
 * The seam between the service callbacks (SPEC section 2) and the HTTP
 * client that carries them: one try of one callback is one
 * {@link CallbackHttp.post}. Retries, 429 waits, slots and logging stay in
 * `service_client.ts`; what a client does is send the POST, keep its
 * connections alive per origin, end the try at its timeout and read the
 * reply within its size limit.
 *
 * The engine's default is `fetch` (`fetch_http.ts`, web-standard); the CLI
 * injects a leaner HTTP/1.1 client over `node:net` (`cli/callbacks/`).
 *
 * @module
 */

/** One try of one callback. */
export interface CallbackRequest {
  /** An absolute `http:` or `https:` URL without credentials. */
  readonly url: string;
  /**
   * Header names (lower case) and values besides those of the body's
   * framing; the same object for every request to the same URL.
   */
  readonly headers: Readonly<Record<string, string>>;
  /** The JSON body. */
  readonly body: string;
  /** The try fails with a `TimeoutError` once this many milliseconds have passed. */
  readonly timeoutMs: number;
  /** The try fails when a 2xx reply's body is larger than this many bytes. */
  readonly maxBytes: number;
}

/** What the service answered. */
export interface CallbackAnswer {
  /** The HTTP status; redirects are never followed. */
  readonly status: number;
  /** A header of the reply, `null` when absent. */
  header(name: string): string | null;
  /** The body as text for a 2xx reply (UTF-8, a leading BOM dropped); `""` otherwise. */
  readonly body: string;
}

/**
 * An HTTP client for service callbacks.
 *
 * Guarantees a client gives the service client:
 * - `post` settles within the request's `timeoutMs` (rejecting with an
 *   `Error` whose `name` is `TimeoutError`), and rejects with an `Error`
 *   saying why on a network failure or an oversized reply (the service
 *   client redacts URLs in it before logging);
 * - connections to an origin are kept alive and reused; a try never waits
 *   for another try's connection;
 * - after {@link close} every try in flight rejects at once and every later
 *   one rejects without being sent.
 */
export interface CallbackHttp {
  /** Sends one try. */
  post(request: CallbackRequest): Promise<CallbackAnswer>;
  /** Ends every try in flight and every idle connection; used at shutdown. */
  close(): void;
}

/** The error of a try that ran past its `timeoutMs`. */
export function timeoutError(): Error {
  return new DOMException("the try timed out", "TimeoutError");
}
