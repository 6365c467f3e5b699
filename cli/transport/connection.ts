/**
 * One accepted WebSocket connection of Shark's own transport (SPEC section 9,
 * "Transports"): frames read off a `Deno.Conn`, keep-alive pings, the closing
 * handshake, and an output queue written with one write per turn. It has the
 * members of the runtime's `WebSocket` that a session uses, so that the
 * engine cannot tell the two apart.
 *
 * @module
 */
import {
  binaryFrame,
  buildFrame,
  CloseCode,
  closeFrame,
  FrameReader,
  type FrameSink,
  isValidCloseCode,
  MAX_CLOSE_REASON_BYTES,
  Opcode,
  textFrame,
} from "./frame.ts";

/** What a connection is built with. */
export interface ConnectionOptions {
  /** `server.max_message_bytes`: a larger message is refused from its header with 1009. */
  readonly maxMessageBytes: number;
  /**
   * Seconds, as `Deno.upgradeWebSocket` takes it (0 = off): a ping after
   * half of it without a frame from the client, the connection dropped when
   * the other half passes without one either.
   */
  readonly idleTimeout: number;
  /** Told when this layer ends the connection itself: a protocol error or a lost keep-alive. */
  readonly onFail?: (code: number, reason: string) => void;
}

/** The first read buffer; it doubles while reads fill it, up to READ_MAX. */
const READ_MIN = 2048;
const READ_MAX = 65536;

/**
 * How long a closing connection waits for the client's close frame (or for
 * its output to drain) before the TCP connection is dropped.
 */
export const CLOSE_WAIT_MS = 5000;

const EMPTY = new Uint8Array(0);

type Listener = EventListenerOrEventListenerObject;

/** Joins `chunks` (`total` bytes) into one buffer. */
function join(chunks: readonly Uint8Array[], total: number): Uint8Array {
  const all = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.byteLength;
  }
  return all;
}

/** Connections with output queued in this turn, written together once the turn's work is done. */
const dirty: WebSocketConnection[] = [];
let flushScheduled = false;

/**
 * Text frames encoded in this turn, by their text: a message fanned out to
 * many connections (the same string sent to each) is encoded once, and every
 * output queue holds the same bytes. Emptied when the turn's output is written.
 */
const encoded = new Map<string, Uint8Array>();

/**
 * Open connections with a keep-alive, checked together by one timer: one
 * timer per connection costs more, in memory and in the runtime's timer
 * queue, than looking at every connection a few times per idle period.
 */
const watched = new Set<WebSocketConnection>();
let sweeper: ReturnType<typeof setInterval> | undefined;
let sweepMs = Infinity;

function watch(connection: WebSocketConnection, halfMs: number): void {
  watched.add(connection);
  // An eighth of the half idle timeout, between 50 ms and 1 s: the ping and
  // the drop come at most that late.
  const period = Math.min(1000, Math.max(50, halfMs / 8));
  if (sweeper !== undefined && period >= sweepMs) return;
  clearInterval(sweeper);
  sweepMs = period;
  sweeper = setInterval(sweep, period);
}

function unwatch(connection: WebSocketConnection): void {
  if (!watched.delete(connection) || watched.size > 0) return;
  clearInterval(sweeper);
  sweeper = undefined;
  sweepMs = Infinity;
}

function sweep(): void {
  const now = performance.now();
  for (const connection of watched) connection.checkAlive(now);
}

function flushDirty(): void {
  flushScheduled = false;
  encoded.clear();
  // A flush may queue nothing new for others, so the list is stable while it runs.
  for (let i = 0; i < dirty.length; i++) dirty[i].flush();
  dirty.length = 0;
}

/**
 * A WebSocket connection, server side. Created by the server for an
 * accepted upgrade; `open` starts it once the 101 answer is queued.
 *
 * @example
 * ```ts
 * const socket = new WebSocketConnection(conn, { maxMessageBytes: 65536, idleTimeout: 30 });
 * socket.addEventListener("message", (event) => socket.send((event as MessageEvent).data));
 * socket.open(switchingProtocols(key), leftover);
 * ```
 */
export class WebSocketConnection implements FrameSink {
  /** How binary messages are handed to listeners, as on `WebSocket`. */
  binaryType: BinaryType = "blob";
  readonly #conn: Deno.Conn;
  readonly #options: ConnectionOptions;
  readonly #reader: FrameReader;
  #state: number = WebSocket.CONNECTING;
  #listeners: Map<string, Listener[]> | undefined;
  #queue: Uint8Array[] | undefined;
  /** Bytes queued and not yet written. */
  #queued = 0;
  #writing = false;
  #dirty = false;
  #closeSent = false;
  /** Once the output is written: `close` the TCP connection, or `linger` (half-close, drain input). */
  #afterFlush: "close" | "linger" | undefined;
  #tcpClosed = false;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  /** Half the idle timeout (0: no keep-alive), and when the unanswered ping went out (0: none). */
  #halfMs = 0;
  #pingedAt = 0;
  #lastRead = 0;
  /** A close asked for before the connection opened. */
  #closeOnOpen: [number | undefined, string | undefined] | undefined;

  constructor(conn: Deno.Conn, options: ConnectionOptions) {
    this.#conn = conn;
    this.#options = options;
    this.#reader = new FrameReader(
      { maxMessageBytes: options.maxMessageBytes, masked: true },
      this,
    );
  }

  /** 0 connecting, 1 open, 2 closing, 3 closed, as on `WebSocket`. */
  get readyState(): number {
    return this.#state;
  }

  /** Bytes sent and not yet handed to the operating system. */
  get bufferedAmount(): number {
    return this.#queued;
  }

  /** Adds a listener for `message`, `close` (or `open`). */
  addEventListener(type: string, listener: Listener): void {
    const listeners = this.#listeners ??= new Map();
    const list = listeners.get(type);
    if (!list) listeners.set(type, [listener]);
    else if (!list.includes(listener)) list.push(listener);
  }

  /** Removes a listener added with {@link addEventListener}. */
  removeEventListener(type: string, listener: Listener): void {
    const list = this.#listeners?.get(type);
    const index = list?.indexOf(listener) ?? -1;
    if (index >= 0) list!.splice(index, 1);
  }

  /**
   * Starts the connection: `response` (the 101 answer) goes out first, then
   * `leftover` (bytes the client sent right after its request) is read.
   */
  open(response: Uint8Array, leftover: Uint8Array): void {
    this.#enqueue(response);
    this.#state = WebSocket.OPEN;
    this.#dispatch("open", new Event("open"));
    this.#readLoop(leftover);
    this.#halfMs = this.#options.idleTimeout * 500;
    if (this.#halfMs > 0) watch(this, this.#halfMs);
    if (this.#closeOnOpen) this.close(...this.#closeOnOpen);
  }

  /** Sends a text (string) or binary (bytes) message. */
  send(data: string | Uint8Array | ArrayBuffer): void {
    if (this.#state === WebSocket.CONNECTING) {
      throw new DOMException("The connection is not open yet.", "InvalidStateError");
    }
    if (this.#state !== WebSocket.OPEN) return;
    if (typeof data !== "string") {
      this.#enqueue(binaryFrame(data instanceof Uint8Array ? data : new Uint8Array(data)));
      return;
    }
    let frame = encoded.get(data);
    if (frame === undefined) encoded.set(data, frame = textFrame(data));
    this.#enqueue(frame);
  }

  /**
   * Starts the closing handshake with `code` and `reason`: what was sent
   * before still goes out first; the TCP connection ends once the client
   * answers (or after {@link CLOSE_WAIT_MS}).
   */
  close(code?: number, reason?: string): void {
    if (code !== undefined && !isValidCloseCode(code)) {
      throw new DOMException(`Invalid close code ${code}.`, "InvalidAccessError");
    }
    if (
      reason !== undefined && new TextEncoder().encode(reason).byteLength > MAX_CLOSE_REASON_BYTES
    ) {
      throw new DOMException("The close reason is over 123 bytes.", "SyntaxError");
    }
    if (this.#state === WebSocket.CONNECTING) {
      this.#closeOnOpen = [code, reason];
      return;
    }
    if (this.#state !== WebSocket.OPEN) return;
    this.#state = WebSocket.CLOSING;
    this.#sendClose(code, reason);
    this.#closeTimer = setTimeout(() => {
      this.#closeTcp();
      this.#end(CloseCode.abnormal, "", false);
    }, CLOSE_WAIT_MS);
  }

  /** Writes what is queued: one write for all of it. Called once per turn by the flush of the dirty list. */
  flush(): void {
    this.#dirty = false;
    const queue = this.#queue;
    if (this.#writing || this.#tcpClosed || !queue || queue.length === 0) return;
    const chunk = queue.length === 1 ? queue[0] : join(queue, this.#queued);
    queue.length = 0;
    this.#writing = true;
    this.#conn.write(chunk).then(
      (written) => this.#written(chunk, written),
      () => this.#lost(),
    );
  }

  // FrameSink: what the reader found (not for other callers).

  /** A message from the client. */
  onMessage(data: string | Uint8Array): void {
    if (this.#state !== WebSocket.OPEN) return;
    const value = typeof data === "string"
      ? data
      : this.binaryType === "arraybuffer"
      ? data.buffer as ArrayBuffer
      : new Blob([data as Uint8Array<ArrayBuffer>]);
    this.#dispatch("message", new MessageEvent("message", { data: value }));
  }

  /** A ping: answered with a pong carrying its payload. */
  onPing(payload: Uint8Array): void {
    if (!this.#closeSent) this.#enqueue(buildFrame(Opcode.pong, payload));
  }

  /** A pong: nothing more to do, any frame the client sends shows it alive. */
  onPong(): void {}

  /**
   * The client's close frame: answered with the same code when the client
   * began the closing handshake; then the server closes the TCP connection
   * first (RFC 6455 section 7.1.1).
   */
  onClose(code: number, reason: string): void {
    this.#sendClose(code, code === CloseCode.noStatus ? undefined : reason);
    this.#afterFlush = "close";
    this.#closeTimer ??= setTimeout(() => this.#closeTcp(), CLOSE_WAIT_MS);
    this.#finishWhenFlushed();
    this.#end(code, reason, true, false);
  }

  /** The client broke the protocol: close frame with `code`, then the connection ends. */
  onFail(code: number, reason: string): void {
    this.#options.onFail?.(code, reason);
    this.#sendClose(code, reason);
    this.#afterFlush = "linger";
    this.#closeTimer ??= setTimeout(() => this.#closeTcp(), CLOSE_WAIT_MS);
    this.#finishWhenFlushed();
    this.#end(code, reason, false, false);
  }

  #enqueue(frame: Uint8Array): void {
    (this.#queue ??= []).push(frame);
    this.#queued += frame.byteLength;
    if (this.#dirty) return;
    this.#dirty = true;
    dirty.push(this);
    if (!flushScheduled) {
      flushScheduled = true;
      queueMicrotask(flushDirty);
    }
  }

  #sendClose(code: number | undefined, reason: string | undefined): void {
    if (this.#closeSent) return;
    this.#closeSent = true;
    this.#enqueue(
      code === undefined || code === CloseCode.noStatus ? closeFrame() : closeFrame(code, reason),
    );
  }

  #written(chunk: Uint8Array, written: number): void {
    this.#writing = false;
    this.#queued -= written;
    if (written < chunk.byteLength) (this.#queue ??= []).unshift(chunk.subarray(written));
    if (this.#queue!.length > 0) this.flush();
    else this.#finishWhenFlushed();
  }

  /** Carries out `#afterFlush` once nothing is left to write. */
  #finishWhenFlushed(): void {
    if (this.#writing || (this.#queue?.length ?? 0) > 0 || this.#tcpClosed) return;
    if (this.#afterFlush === "close") {
      this.#closeTcp();
    } else if (this.#afterFlush === "linger") {
      // Half-close: the client reads our close frame and ends its side; what
      // it still sends is read and dropped, never buffered.
      this.#afterFlush = undefined;
      this.#conn.closeWrite().catch(() => this.#closeTcp());
    }
  }

  /** Reads until the end of the stream; frames go to the reader, which calls back. */
  async #readLoop(leftover: Uint8Array): Promise<void> {
    this.#lastRead = performance.now();
    if (leftover.byteLength > 0) this.#reader.read(leftover);
    let buffer = new Uint8Array(READ_MIN);
    while (!this.#tcpClosed) {
      let read: number | null;
      try {
        read = await this.#conn.read(buffer);
      } catch {
        read = null;
      }
      if (read === null) break;
      this.#lastRead = performance.now();
      if (this.#reader.failed) continue;
      this.#reader.read(buffer.subarray(0, read));
      if (read === buffer.byteLength && buffer.byteLength < READ_MAX) {
        buffer = new Uint8Array(buffer.byteLength * 2);
      } else if (read <= buffer.byteLength / 8 && buffer.byteLength > READ_MIN) {
        buffer = new Uint8Array(buffer.byteLength / 2);
      }
    }
    this.#closeTcp();
    this.#end(CloseCode.abnormal, "", false);
  }

  /**
   * The keep-alive, looked at by the sweeper: a ping after half the idle
   * timeout without a frame from the client; the connection dropped when the
   * other half passes without one either.
   */
  checkAlive(now: number): void {
    if (this.#state !== WebSocket.OPEN) return;
    if (this.#pingedAt === 0) {
      if (now - this.#lastRead < this.#halfMs) return;
      this.#pingedAt = now;
      this.#enqueue(buildFrame(Opcode.ping, EMPTY));
      return;
    }
    if (this.#lastRead > this.#pingedAt) {
      this.#pingedAt = 0;
      return;
    }
    if (now - this.#pingedAt < this.#halfMs) return;
    this.#options.onFail?.(CloseCode.abnormal, "keep-alive timeout");
    this.#sendClose(1011, "keep-alive timeout");
    this.#afterFlush = "close";
    this.#closeTimer ??= setTimeout(() => this.#closeTcp(), CLOSE_WAIT_MS);
    this.#finishWhenFlushed();
    this.#end(CloseCode.abnormal, "", false, false);
  }

  /** The output cannot be written: the client is gone. */
  #lost(): void {
    this.#writing = false;
    this.#queue = undefined;
    this.#queued = 0;
    this.#closeTcp();
    this.#end(CloseCode.abnormal, "", false);
  }

  #closeTcp(): void {
    if (this.#tcpClosed) return;
    this.#tcpClosed = true;
    clearTimeout(this.#closeTimer);
    try {
      this.#conn.close();
    } catch {
      // Already closed by the runtime.
    }
  }

  /**
   * The connection is over for its listeners: `close` is dispatched once,
   * with the code the client sent (or the one this layer failed it with).
   * With `closeTcp`, the TCP connection is closed now.
   */
  #end(code: number, reason: string, wasClean: boolean, closeTcp = true): void {
    if (this.#state === WebSocket.CLOSED) return;
    this.#state = WebSocket.CLOSED;
    unwatch(this);
    if (closeTcp) this.#closeTcp();
    this.#dispatch("close", new CloseEvent("close", { code, reason, wasClean }));
  }

  #dispatch(type: string, event: Event): void {
    const list = this.#listeners?.get(type);
    if (!list) return;
    for (const listener of list) {
      try {
        if (typeof listener === "function") listener.call(this, event);
        else listener.handleEvent(event);
      } catch (error) {
        reportError(error);
      }
    }
  }
}
