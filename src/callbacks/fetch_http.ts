/**
 * The default {@link CallbackHttp}: `fetch`, which pools and reuses
 * connections per origin, with one abort controller and one timer per try.
 *
 * @module
 */
import {
  type CallbackAnswer,
  type CallbackHttp,
  type CallbackRequest,
  timeoutError,
} from "./callback_http.ts";
import { readLimited } from "../http/read_limited.ts";

/**
 * Service callbacks over `fetch`.
 *
 * @example
 * ```ts
 * const http = new FetchCallbackHttp();
 * const answer = await http.post({
 *   url: "http://127.0.0.1:8000/auth",
 *   headers: { "content-type": "application/json" },
 *   body: '{"ticket":"t"}',
 *   timeoutMs: 15_000,
 *   maxBytes: 4 * 1024 * 1024,
 * });
 * ```
 */
export class FetchCallbackHttp implements CallbackHttp {
  /** Tries in flight, aborted by {@link close}. */
  readonly #inFlight = new Set<AbortController>();
  #closed = false;

  async post(request: CallbackRequest): Promise<CallbackAnswer> {
    if (this.#closed) throw new DOMException("the client is closed", "AbortError");
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(timeoutError()), request.timeoutMs);
    this.#inFlight.add(controller);
    try {
      const response = await fetch(request.url, {
        method: "POST",
        headers: request.headers,
        body: request.body,
        signal: controller.signal,
        redirect: "manual",
      });
      const ok = response.status >= 200 && response.status <= 299;
      if (!ok) await response.body?.cancel();
      const body = ok ? await readLimited(response, request.maxBytes) : "";
      return { status: response.status, header: (name) => response.headers.get(name), body };
    } finally {
      clearTimeout(timer);
      this.#inFlight.delete(controller);
    }
  }

  close(): void {
    this.#closed = true;
    for (const controller of this.#inFlight) controller.abort();
  }
}
