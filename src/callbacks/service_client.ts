/**
 * The service callbacks' tries (SPEC section 2): JSON POSTs through a
 * {@link CallbackHttp} (`fetch` unless one is injected) with a timeout per
 * try, retries, 429 handling, at most `http.max_concurrent` tries in flight
 * per origin (`callback_slots.ts`) and credentials kept out of logs.
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import { Slots } from "./callback_slots.ts";
import type { CallbackAnswer, CallbackHttp } from "./callback_http.ts";
import { FetchCallbackHttp } from "./fetch_http.ts";
import type { SharkConfig } from "../config/config.ts";
import type { Metrics } from "../metrics/metrics.ts";
import { ErrorText } from "../protocol.ts";
import { redactUrl, redactUrls } from "../config/redact.ts";
import { delay } from "../clock.ts";
import { isObject } from "../json.ts";

/** Whose callback it is. */
export interface Caller {
  /**
   * Where the callback's lines go. Read only when a line is written, so that
   * sessions whose callbacks succeed quietly never build a logger.
   */
  readonly log: Logger;
  /**
   * Aborted when the reply is no longer wanted (the session closed): the
   * callback then stops waiting, for a 429's reset, between tries or for a
   * slot, and no further try starts; a try in flight finishes, since the
   * service may already act on it. Read only when the callback has to wait.
   */
  readonly signal?: AbortSignal;
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
  readonly headers: Readonly<Record<string, string>>;
  /** The `http.max_concurrent` slots of the URL's origin. */
  readonly slots: Slots;
}

/**
 * What went wrong, for the log: the error's name and message, and its
 * cause's message, where `fetch` says why and names the URL it tried (which
 * the caller redacts).
 */
function problemOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : "";
  return `${error.name}: ${error.message}${cause}`;
}

/**
 * Where a 3xx reply points, for the log: its `Location`'s origin only (the
 * rest may carry tokens). Redirects are not followed: a 301/302 would turn
 * the POST into a bodyless GET, and any of them could carry the URL's
 * credentials to another origin.
 */
function redirection(answer: CallbackAnswer, url: string): string {
  if (answer.status < 300 || answer.status > 399) return "";
  const location = URL.parse(answer.header("location") ?? "", url);
  return `, a redirect to ${location?.origin ?? "nowhere"} (not followed)`;
}

function targetOf(text: string, slots: Slots): Target {
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
  return { url: url.href, shown: redactUrl(text), headers, slots };
}

/**
 * Posts callbacks to services. One instance is shared by every session, so
 * its {@link CallbackHttp} keeps connections to each service alive and
 * reuses them.
 *
 * @example
 * ```ts
 * const client = new ServiceClient(config.http, metrics, logger, new FetchCallbackHttp());
 * const reply = await client.post("authorizer", "http://127.0.0.1:8000/auth", { subscription: "books.1" });
 * ```
 */
export class ServiceClient {
  readonly #http: SharkConfig["http"];
  readonly #metrics: Metrics;
  readonly #log: Logger;
  readonly #targets = new Map<string, Target>();
  /** The slots of each origin called so far. */
  readonly #slots = new Map<string, Slots>();
  readonly #client: CallbackHttp;
  readonly #stop = new AbortController();

  /** @param client carries the tries (default `fetch`); closed by {@link close}. */
  constructor(
    http: SharkConfig["http"],
    metrics: Metrics,
    log: Logger,
    client: CallbackHttp = new FetchCallbackHttp(),
  ) {
    this.#http = http;
    this.#metrics = metrics;
    this.#log = log;
    this.#client = client;
  }

  /** Aborts every request and wait in progress; later posts fail at once. */
  close(): void {
    this.#stop.abort();
    for (const slots of this.#slots.values()) slots.close();
    this.#client.close();
  }

  /**
   * POSTs `body` as JSON to `url` and returns the service's reply, or
   * `{"status":"error","error":"Service unavailable."}` after the last failed try.
   */
  async post(
    callback: string,
    url: string,
    body: Record<string, unknown>,
    source: Caller = { log: this.#log },
  ): Promise<ServiceReply> {
    let target = this.#targets.get(url);
    if (!target) this.#targets.set(url, target = targetOf(url, this.#slotsOf(url)));
    const text = JSON.stringify(body);
    const started = performance.now();
    const tries = this.#http.tries;
    let wait = this.#http.wait;
    /** Stops the waits between tries: the client closing, or the caller no longer needing the reply. */
    let cancel: AbortSignal | undefined = this.#stop.signal.aborted ? this.#stop.signal : undefined;
    let cancelled = false;
    for (let attempt = 1; attempt <= tries && !cancel?.aborted; attempt++) {
      if (attempt > 1) {
        cancel ??= this.#cancelOf(source);
        if (wait > 0) await delay(wait * 1000, cancel);
        if (cancel.aborted) break;
      }
      wait = this.#http.wait;
      const slots = target.slots;
      // The slots send their waiters away themselves when the client closes.
      if (!slots.tryTake() && !(await slots.wait(source.signal))) {
        cancelled = true;
        break;
      }
      let outcome: ServiceReply | number | TryFailure;
      try {
        outcome = await this.#try(target, text);
      } finally {
        slots.release();
      }
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
    const outcome = cancelled || cancel?.aborted ? "cancelled" : "unavailable";
    this.#metrics.callback(callback, outcome, (performance.now() - started) / 1000);
    return UNAVAILABLE;
  }

  /** What stops a callback's waits: the client closing, or the caller's signal. */
  #cancelOf(caller: Caller): AbortSignal {
    const signal = caller.signal;
    return signal ? AbortSignal.any([this.#stop.signal, signal]) : this.#stop.signal;
  }

  #slotsOf(url: string): Slots {
    const origin = new URL(url).origin;
    let slots = this.#slots.get(origin);
    if (!slots) {
      this.#slots.set(origin, slots = new Slots(this.#http.max_concurrent, this.#metrics));
    }
    return slots;
  }

  /** One try: the reply, the seconds to wait after a 429, or what went wrong. */
  async #try(target: Target, body: string): Promise<ServiceReply | number | TryFailure> {
    let answer: CallbackAnswer;
    try {
      answer = await this.#client.post({
        url: target.url,
        headers: target.headers,
        body,
        timeoutMs: this.#http.timeout * 1000,
        maxBytes: MAX_SERVICE_REPLY_BYTES,
      });
    } catch (error) {
      return new TryFailure(redactUrls(problemOf(error)));
    }
    if (answer.status === 429) return this.#rateLimitWait(answer);
    if (answer.status < 200 || answer.status > 299) {
      return new TryFailure(`HTTP status ${answer.status}${redirection(answer, target.url)}`);
    }
    let reply: unknown;
    try {
      reply = JSON.parse(answer.body);
    } catch (error) {
      return new TryFailure(redactUrls(problemOf(error)));
    }
    return isObject(reply) ? reply : new TryFailure("the reply is not a JSON object");
  }

  #rateLimitWait(answer: CallbackAnswer): number {
    for (const name of this.#http.rate_limit_reset_header_names) {
      const value = answer.header(name);
      if (value === null) continue;
      const seconds = Number(value.trim());
      if (value.trim() !== "" && seconds >= 0 && seconds <= MAX_RATE_LIMIT_WAIT) return seconds;
      this.#log.warn("invalid rate limit reset header {name}: {value}", { name, value });
      return this.#http.wait;
    }
    return this.#http.wait;
  }
}
