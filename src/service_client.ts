/**
 * The HTTP client for service callbacks (SPEC section 2): JSON POSTs over
 * `fetch` with a timeout per try, retries, 429 handling and credentials kept
 * out of logs.
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import type { SharkConfig } from "./config.ts";
import type { Metrics } from "./metrics.ts";
import { ErrorText } from "./protocol.ts";
import { redactUrl } from "./redact.ts";
import { delay, isObject, readLimited } from "./util.ts";

/**
 * Whose logger a callback's lines go to. Read only when a line is written,
 * so that sessions whose callbacks succeed quietly never build a logger.
 */
export interface LogSource {
  readonly log: Logger;
}

/** A service's JSON reply; `status: "ok"` means success. */
export type ServiceReply = Record<string, unknown>;

/** A service reply is refused past this size: a service cannot exhaust memory. */
export const MAX_SERVICE_REPLY_BYTES = 4 * 1024 * 1024;

/** The longest wait a 429 reset header may ask for, in seconds. */
const MAX_RATE_LIMIT_WAIT = 3600;

const UNAVAILABLE: ServiceReply = Object.freeze({
  status: "error",
  error: ErrorText.serviceUnavailable,
});

/** Why one try failed. */
class TryFailure {
  constructor(readonly problem: string) {}
}

interface Target {
  /** The URL without credentials: `fetch` refuses URLs that carry them. */
  readonly url: string;
  /** The URL as it may appear in logs. */
  readonly shown: string;
  readonly headers: HeadersInit;
}

function targetOf(text: string): Target {
  const url = new URL(text);
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (url.username || url.password) {
    const user = decodeURIComponent(url.username);
    const password = decodeURIComponent(url.password);
    const bytes = new TextEncoder().encode(`${user}:${password}`);
    headers.authorization = `Basic ${btoa(String.fromCharCode(...bytes))}`;
    url.username = "";
    url.password = "";
  }
  return { url: url.href, shown: redactUrl(text), headers };
}

/**
 * Posts callbacks to services. One instance is shared by every session, so
 * `fetch` keeps connections to each service alive and reuses them.
 *
 * @example
 * ```ts
 * const client = new ServiceClient(config.http, metrics, logger);
 * const reply = await client.post("authorizer", "http://127.0.0.1:8000/auth", { subscription: "books.1" });
 * ```
 */
export class ServiceClient {
  readonly #http: SharkConfig["http"];
  readonly #metrics: Metrics;
  readonly #log: Logger;
  readonly #targets = new Map<string, Target>();
  /** Requests in flight, aborted by {@link close}. */
  readonly #inFlight = new Set<AbortController>();
  readonly #stop = new AbortController();

  constructor(http: SharkConfig["http"], metrics: Metrics, log: Logger) {
    this.#http = http;
    this.#metrics = metrics;
    this.#log = log;
  }

  /** Aborts every request and wait in progress; later posts fail at once. */
  close(): void {
    this.#stop.abort();
    for (const controller of this.#inFlight) controller.abort();
  }

  /**
   * POSTs `body` as JSON to `url` and returns the service's reply, or
   * `{"status":"error","error":"Service unavailable."}` after the last failed try.
   */
  async post(
    callback: string,
    url: string,
    body: Record<string, unknown>,
    source: LogSource = { log: this.#log },
  ): Promise<ServiceReply> {
    let target = this.#targets.get(url);
    if (!target) this.#targets.set(url, target = targetOf(url));
    const text = JSON.stringify(body);
    const started = performance.now();
    const tries = this.#http.tries;
    let wait = this.#http.wait;
    for (let attempt = 1; attempt <= tries && !this.#stop.signal.aborted; attempt++) {
      if (attempt > 1 && wait > 0) await delay(wait * 1000, this.#stop.signal);
      wait = this.#http.wait;
      const outcome = await this.#try(target, text);
      if (typeof outcome !== "number" && !(outcome instanceof TryFailure)) {
        const seconds = (performance.now() - started) / 1000;
        this.#metrics.callback(callback, outcome.status === "ok" ? "ok" : "error", seconds);
        if (this.#log.isEnabledFor("debug")) {
          source.log.debug("service {callback} answered", {
            callback,
            url: target.shown,
            attempt,
            ms: Math.round(seconds * 1000),
            status: outcome.status,
          });
        }
        return outcome;
      }
      if (typeof outcome === "number") {
        wait = outcome;
        source.log.warn("service rate limited {callback}, waiting {wait}s", {
          callback,
          url: target.shown,
          attempt,
          wait,
        });
      } else {
        source.log.warn("service {callback} failed: {error}", {
          callback,
          url: target.shown,
          attempt,
          error: outcome.problem,
        });
      }
    }
    this.#metrics.callback(callback, "unavailable", (performance.now() - started) / 1000);
    return UNAVAILABLE;
  }

  /**
   * One try: the reply, the seconds to wait after a 429, or what went wrong.
   * One controller and one timer per try: cheaper than composing
   * `AbortSignal.timeout` with a shared stop signal on every callback.
   */
  async #try(target: Target, body: string): Promise<ServiceReply | number | TryFailure> {
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new DOMException("the try timed out", "TimeoutError")),
      this.#http.timeout * 1000,
    );
    this.#inFlight.add(controller);
    try {
      const response = await fetch(target.url, {
        method: "POST",
        headers: target.headers,
        body,
        signal: controller.signal,
      });
      if (response.status === 429) {
        await response.body?.cancel();
        return this.#rateLimitWait(response.headers);
      }
      if (!response.ok) {
        await response.body?.cancel();
        return new TryFailure(`HTTP status ${response.status}`);
      }
      const reply: unknown = JSON.parse(await readLimited(response, MAX_SERVICE_REPLY_BYTES));
      return isObject(reply) ? reply : new TryFailure("the reply is not a JSON object");
    } catch (error) {
      const problem = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      return new TryFailure(problem);
    } finally {
      clearTimeout(timer);
      this.#inFlight.delete(controller);
    }
  }

  #rateLimitWait(headers: Headers): number {
    for (const name of this.#http.rate_limit_reset_header_names) {
      const value = headers.get(name);
      if (value === null) continue;
      const seconds = Number(value.trim());
      if (value.trim() !== "" && seconds >= 0 && seconds <= MAX_RATE_LIMIT_WAIT) return seconds;
      this.#log.warn("invalid rate limit reset header {name}: {value}", { name, value });
      return this.#http.wait;
    }
    return this.#http.wait;
  }
}
