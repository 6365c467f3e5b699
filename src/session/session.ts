/**
 * A client session: one socket, its auth info and subscriptions, the queue
 * of its events (handled one at a time, in arrival order) and its output,
 * guarded against slow consumers.
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import { type Clock, MAX_TIMER_MS, REAL_CLOCK } from "../clock.ts";
import type { Metrics } from "../metrics/metrics.ts";
import { CloseReason, MAX_PENDING_EVENTS } from "../protocol.ts";
import { OPEN, type Socket } from "../socket.ts";
import type { Subscriber, Subscription } from "../delivery/subscription.ts";
import { EMPTY, type JsonObject } from "../json.ts";

/** A random id for a session, short enough to read in logs. */
function randomId(): string {
  return crypto.randomUUID().slice(0, 13).replace("-", "");
}

/**
 * The reason of every session's closing signal: `abort()` without one builds
 * a `DOMException` (and its stack) per session, ~20 µs in a mass close.
 */
const SESSION_CLOSED = new DOMException("the session closed", "AbortError");

/** A frame as it comes off the socket: text, or bytes with `binaryType` "arraybuffer". */
export type ClientFrame = string | ArrayBuffer;

/** Told of a session's busy spells: the events it handles, one after the other. */
export interface BusyListener {
  started(session: Session): void;
  finished(session: Session): void;
  closed(session: Session): void;
}

/** What a session needs of the engine that accepted it. */
export interface SessionHost {
  readonly metrics: Metrics;
  /** `server.max_message_bytes` and `server.max_buffered_bytes`. */
  readonly limits: { readonly maxMessageBytes: number; readonly maxBufferedBytes: number };
  /** Handles one client event; never rejects. */
  handleEvent(session: Session, frame: ClientFrame): Promise<void>;
  /** Ends the subscriptions of a closed session, running their callbacks. */
  sessionClosed(session: Session): Promise<void>;
  /** The timers of credential expiry; tests pass a fake clock. Default the runtime's. */
  readonly clock?: Clock;
  /** Told when the session starts and stops handling events, and when it closes. */
  readonly busy?: BusyListener;
}

/**
 * A slow consumer is noticed within this much output: the buffer may exceed
 * `server.max_buffered_bytes` by at most this many bytes (times 3 for
 * non-ASCII text) before the connection is closed.
 */
export const BUFFER_CHECK_BYTES = 16 * 1024;

/** The UTF-8 size of `text` if it may exceed `limit`, else a cheap lower bound. */
function utf8Size(text: string, limit: number): number {
  if (text.length * 3 <= limit) return text.length;
  return new TextEncoder().encode(text).byteLength;
}

/**
 * One client connection. Kept small: an idle subscribed connection costs
 * little more than its socket, so logger contexts, the
 * event queue and the close promise are only allocated when used.
 *
 * @example
 * ```ts
 * const { socket, response } = Deno.upgradeWebSocket(request);
 * new Session(socket, host, logger);
 * return response;
 * ```
 */
export class Session implements Subscriber, EventListenerObject {
  /** A random id, on every log line of this session. */
  get id(): string {
    return this.#id ??= randomId();
  }
  #client: string | undefined;
  /** Whether an `auth` event succeeded (even one that returned no auth fields). */
  authenticated = false;
  /** The auth fields of the last successful `auth`. */
  authInfo: JsonObject = EMPTY;
  /** Confirmed subscriptions by name. */
  readonly subscriptions: Map<string, Subscription> = new Map();
  /** Drawn when first read: most sessions never write a log line. */
  #id: string | undefined;
  readonly #socket: Socket;
  readonly #host: SessionHost;
  readonly #baseLog: Logger;
  #log: Logger | undefined;
  #pending: ClientFrame[] | undefined;
  #handling: Promise<void> | undefined;
  #closed = false;
  /** Characters sent since `bufferedAmount` was last looked at. */
  #unchecked = 0;
  #done: PromiseWithResolvers<void> | undefined;
  #finished = false;
  #closing: AbortController | undefined;
  /** The timer that closes the connection when the credentials of the last `auth` expire. */
  #expiry: unknown;

  constructor(socket: Socket, host: SessionHost, log: Logger) {
    this.#socket = socket;
    this.#host = host;
    this.#baseLog = log;
    socket.binaryType = "arraybuffer";
    // The session itself is the listener: no closure per connection. No
    // error listener: a close event follows every error (see Socket).
    socket.addEventListener("message", this);
    socket.addEventListener("close", this);
  }

  /**
   * The connection's `client` id (SPEC section 12): unique across every node
   * sharing the adapter, never reused; created when first asked for.
   */
  get client(): string {
    return this.#client ??= crypto.randomUUID();
  }

  /** Whether the session is the connection with `client` id (which it is not if it has none yet). */
  isClient(client: string): boolean {
    return this.#client === client;
  }

  /** The session's logger, carrying its id. */
  get log(): Logger {
    return this.#log ??= this.#baseLog.with({ session: this.id });
  }

  /** Resolves once the session is closed and its unsubscribe callbacks are done. */
  get finished(): Promise<void> {
    if (this.#finished) return Promise.resolve();
    return (this.#done ??= Promise.withResolvers()).promise;
  }

  /** Whether the session has ended; its pending work checks this after each await. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Aborted when the session ends, so that callbacks it no longer needs stop
   * waiting. Created when first asked for: most sessions never wait.
   */
  get signal(): AbortSignal {
    if (!this.#closing) {
      this.#closing = new AbortController();
      if (this.#closed) this.#closing.abort();
    }
    return this.#closing.signal;
  }

  /** Socket events. */
  handleEvent(event: Event): void {
    if (event.type === "message") {
      this.#onFrame((event as MessageEvent).data);
      return;
    }
    if (!this.#closed) {
      this.log.info("connection closed by client ({code})", { code: (event as CloseEvent).code });
    }
    this.#end();
  }

  /** Resolves when no event of this session is being handled. */
  async idle(): Promise<void> {
    while (this.#handling) await this.#handling;
  }

  /** Sends a reply or notice to the client. */
  send(message: JsonObject): boolean {
    return this.#write(JSON.stringify(message));
  }

  /** Sends a published message frame to the client, counted as delivered. */
  deliver(frame: string): boolean {
    if (!this.#write(frame)) return false;
    this.#host.metrics.delivered++;
    return true;
  }

  /** Sends a frame that is not a published message (a `join` or `leave`). */
  notify(frame: string): boolean {
    return this.#write(frame);
  }

  /**
   * Closes the connection at once; the unsubscribe callbacks run afterwards.
   * Resolves once they are done.
   */
  close(reason: CloseReason): Promise<void> {
    if (this.#closed) return this.finished;
    this.#noteClose(reason);
    this.#closeSocket(reason);
    const finished = this.finished;
    this.#end();
    return finished;
  }

  /**
   * Closes the connection with 4001 "token expired" (SPEC section 11) after
   * `ms` milliseconds, once the unsubscribe callbacks have run; a later call
   * (a new successful `auth`) replaces the deadline, `undefined` removes it.
   */
  expireAuthIn(ms: number | undefined): void {
    const clock = this.#host.clock ?? REAL_CLOCK;
    clock.clearTimeout(this.#expiry);
    this.#expiry = undefined;
    if (ms === undefined || this.#closed) return;
    const step = Math.max(0, Math.min(ms, MAX_TIMER_MS));
    this.#expiry = clock.setTimeout(() => {
      if (step < ms) this.expireAuthIn(ms - step);
      else this.#expire();
    }, step);
  }

  /**
   * Unlike `close`, the socket closes only once the unsubscribe callbacks are
   * done: a client that reconnects with a fresh token finds the services
   * already told.
   */
  #expire(): void {
    const reason = CloseReason.tokenExpired;
    this.#noteClose(reason);
    this.finished.then(() => this.#closeSocket(reason));
    this.#end();
  }

  #noteClose(reason: CloseReason): void {
    this.log.info("closing connection: {reason}", { reason: reason.reason, code: reason.code });
    this.#host.metrics.closed(reason.name);
  }

  #closeSocket(reason: CloseReason): void {
    try {
      this.#socket.close(reason.code, reason.reason);
    } catch (error) {
      this.log.debug("socket close failed: {error}", { error: String(error) });
    }
  }

  #write(frame: string): boolean {
    const socket = this.#socket;
    if (this.#closed || socket.readyState !== OPEN) return false;
    // bufferedAmount is a call into the runtime: look at it once per
    // BUFFER_CHECK_BYTES of output rather than on every frame.
    this.#unchecked += frame.length;
    if (this.#unchecked >= BUFFER_CHECK_BYTES) {
      this.#unchecked = 0;
      if (socket.bufferedAmount > this.#host.limits.maxBufferedBytes) {
        this.#host.metrics.dropped("slow_consumer");
        this.close(CloseReason.slowConsumer);
        return false;
      }
    }
    socket.send(frame);
    return true;
  }

  #onFrame(frame: ClientFrame): void {
    if (this.#closed) return;
    const { maxMessageBytes } = this.#host.limits;
    const size = typeof frame === "string" ? utf8Size(frame, maxMessageBytes) : frame.byteLength;
    if (size > maxMessageBytes) {
      this.close(CloseReason.messageTooBig);
      return;
    }
    const pending = this.#pending ??= [];
    if (pending.length >= MAX_PENDING_EVENTS) {
      this.close(CloseReason.tooManyEvents);
      return;
    }
    pending.push(frame);
    if (this.#handling) return;
    this.#host.busy?.started(this);
    this.#handling = this.#handlePending(pending);
  }

  async #handlePending(pending: ClientFrame[]): Promise<void> {
    while (pending.length > 0 && !this.#closed) {
      await this.#host.handleEvent(this, pending.shift()!);
    }
    this.#pending = undefined;
    this.#handling = undefined;
    this.#host.busy?.finished(this);
  }

  #end(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#host.busy?.closed(this);
    this.#closing?.abort(SESSION_CLOSED);
    this.expireAuthIn(undefined);
    this.#host.sessionClosed(this).catch((error) =>
      this.log.error("closing session failed: {error}", { error: String(error) })
    ).finally(() => {
      this.#finished = true;
      this.#done?.resolve();
    });
  }
}
