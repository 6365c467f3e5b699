/**
 * One accepted WebSocket connection of Shark's own transport (SPEC section 9,
 * "Transports"): frames read off a `node:net` socket, keep-alive pings, the
 * closing handshake, and an output queue written with one write per turn. It
 * has the members of the runtime's `WebSocket` that a session uses, so that
 * the engine cannot tell the two apart. Why `node:net` and not `Deno.Conn`:
 * README, "Transport" (a write costs about half the CPU).
 *
 * @module
 */
import type { Socket } from "node:net";
import { CLOSED, CLOSING, CONNECTING, OPEN } from "../../src/socket.ts";
import {
  binaryFrame,
  buildFrame,
  CloseCode,
  closeFrame,
  isValidCloseCode,
  MAX_CLOSE_REASON_BYTES,
  Opcode,
} from "./frame.ts";
import { FrameReader, type FrameSink } from "./frame_reader.ts";
import type { ChunkWriter } from "./chunk_writer.ts";
import { Outbox } from "./outbox.ts";
import type { TransportScheduler } from "./scheduler.ts";
import { stopReading } from "./stop_reading.ts";
import { readerFailure, type TransportFailure } from "./failure.ts";
import { Listeners, messageData } from "./listeners.ts";

export type { TransportFailure } from "./failure.ts";

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
  readonly onFail?: (failure: TransportFailure) => void;
  /** What the connections of this isolate share: the flush of a turn, the keep-alive, the writer. */
  readonly scheduler: TransportScheduler;
  /** How output reaches the socket; by default the scheduler's writer for the socket. */
  readonly writer?: ChunkWriter;
}

/**
 * What a connection uses of its socket: a `node:net` `Socket` (or a
 * `node:tls` `TLSSocket`), in flowing mode, with nothing read off it yet
 * except what is handed to {@link WebSocketConnection.open}.
 */
export type Wire = Pick<
  Socket,
  "write" | "end" | "destroy" | "on" | "pause" | "resume" | "writableLength"
>;

/**
 * How long a closing connection waits for the client's close frame (or for
 * its output to drain) before the TCP connection is dropped.
 */
export const CLOSE_WAIT_MS = 5000;

/**
 * How long a connection this layer failed (a protocol error, a message too
 * big, a lost keep-alive) stays open after its close frame: reading has
 * stopped (`stop_reading.ts`), so nothing the client still sends is read;
 * this is the time the client has to read the close frame before the TCP
 * connection is dropped (RFC 6455 section 7.1.7, "Fail the WebSocket
 * Connection").
 */
export const FAIL_GRACE_MS = 1000;

const EMPTY = new Uint8Array(0);

type Listener = EventListenerOrEventListenerObject;

/**
 * A WebSocket connection, server side: the `WebSocket` members a session
 * uses and the closing handshake. Created by the server for an accepted
 * upgrade; `open` starts it once the 101 answer is queued. Its output is
 * an {@link Outbox}.
 *
 * @example
 * ```ts
 * const scheduler = new TransportScheduler();
 * const socket = new WebSocketConnection(tcpSocket, {
 *   maxMessageBytes: 65536,
 *   idleTimeout: 30,
 *   scheduler,
 * });
 * socket.addEventListener("message", (event) => socket.send((event as MessageEvent).data));
 * socket.open(switchingProtocols(key), leftover);
 * ```
 */
export class WebSocketConnection implements FrameSink {
  /** How binary messages are handed to listeners, as on `WebSocket`. */
  binaryType: BinaryType = "blob";
  readonly #wire: Wire;
  readonly #options: ConnectionOptions;
  readonly #scheduler: TransportScheduler;
  readonly #outbox: Outbox;
  readonly #reader: FrameReader;
  #state: number = CONNECTING;
  readonly #listeners = new Listeners();
  #closeSent = false;
  #tcpClosed = false;
  /** Frames are read off the socket (false once the connection was failed). */
  #reading = true;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  /** Half the idle timeout (0: no keep-alive), and when the unanswered ping went out (0: none). */
  #halfMs = 0;
  #pingedAt = 0;
  #lastRead = 0;
  /** A close asked for before the connection opened. */
  #closeOnOpen: [number | undefined, string | undefined] | undefined;

  constructor(wire: Wire, options: ConnectionOptions) {
    this.#wire = wire;
    this.#options = options;
    this.#scheduler = options.scheduler;
    this.#outbox = new Outbox(
      options.writer ?? options.scheduler.chunkWriter(wire),
      options.scheduler,
      () => wire.end(),
    );
    this.#reader = new FrameReader(
      { maxMessageBytes: options.maxMessageBytes, masked: true },
      this,
    );
  }

  /** 0 connecting, 1 open, 2 closing, 3 closed, as on `WebSocket`. */
  get readyState(): number {
    return this.#state;
  }

  /** Buffers in the output queue (see {@link Outbox.queuedBuffers}). */
  get queuedBuffers(): number {
    return this.#outbox.queuedBuffers;
  }

  /** Bytes sent and not yet handed to the operating system (queued here or in the socket). */
  get bufferedAmount(): number {
    return this.#outbox.buffered;
  }

  /** Adds a listener for `message`, `close` (or `open`). */
  addEventListener(type: string, listener: Listener): void {
    this.#listeners.add(type, listener);
  }

  /** Removes a listener added with {@link addEventListener}. */
  removeEventListener(type: string, listener: Listener): void {
    this.#listeners.remove(type, listener);
  }

  /**
   * Starts the connection: `response` (the 101 answer) goes out first, then
   * `leftover` (bytes the client sent right after its request) is read.
   */
  open(response: Uint8Array, leftover: Uint8Array): void {
    this.#outbox.enqueue(response);
    this.#state = OPEN;
    this.#dispatch(new Event("open"));
    this.#listen(leftover);
    this.#halfMs = this.#options.idleTimeout * 500;
    if (this.#halfMs > 0) this.#scheduler.keepAlive.watch(this, this.#halfMs);
    if (this.#closeOnOpen) this.close(...this.#closeOnOpen);
  }

  /** Sends a text (string) or binary (bytes) message. */
  send(data: string | Uint8Array | ArrayBuffer): void {
    if (this.#state === CONNECTING) {
      throw new DOMException("The connection is not open yet.", "InvalidStateError");
    }
    if (this.#state !== OPEN) return;
    this.#outbox.enqueue(
      typeof data === "string"
        ? this.#scheduler.textFrame(data)
        : binaryFrame(data instanceof Uint8Array ? data : new Uint8Array(data)),
    );
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
    if (this.#state === CONNECTING) {
      this.#closeOnOpen = [code, reason];
      return;
    }
    if (this.#state !== OPEN) return;
    this.#state = CLOSING;
    this.#sendClose(code, reason);
    this.#closeTimer = setTimeout(() => {
      this.#closeTcp();
      this.#end(CloseCode.abnormal, "", false);
    }, CLOSE_WAIT_MS);
  }

  // FrameSink: what the reader found (not for other callers).

  /** A message from the client. */
  onMessage(data: string | Uint8Array): void {
    if (this.#state !== OPEN) return;
    const value = messageData(data, this.binaryType);
    this.#dispatch(new MessageEvent("message", { data: value }));
  }

  /** A ping: answered with a pong carrying its payload. */
  onPing(payload: Uint8Array): void {
    if (!this.#closeSent) this.#outbox.enqueue(buildFrame(Opcode.pong, payload));
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
    this.#closeTimer ??= setTimeout(() => this.#closeTcp(), CLOSE_WAIT_MS);
    this.#outbox.endWhenFlushed();
    this.#end(code, reason, true, false);
  }

  /** The client broke the protocol: close frame with `code`, then the connection ends. */
  onFail(code: number, reason: string): void {
    this.#options.onFail?.(readerFailure(code));
    this.#failConnection(code, reason, code, reason);
  }

  /**
   * The keep-alive, looked at by the sweeper: a ping after half the idle
   * timeout without a frame from the client; the connection dropped when the
   * other half passes without one either.
   */
  checkAlive(now: number): void {
    if (this.#state !== OPEN) return;
    if (this.#pingedAt === 0) {
      if (now - this.#lastRead < this.#halfMs) return;
      this.#pingedAt = now;
      this.#outbox.enqueue(buildFrame(Opcode.ping, EMPTY));
      return;
    }
    if (this.#lastRead > this.#pingedAt) {
      this.#pingedAt = 0;
      return;
    }
    if (now - this.#pingedAt < this.#halfMs) return;
    this.#options.onFail?.("ping_timeout");
    this.#failConnection(1011, "keep-alive timeout", CloseCode.abnormal, "");
  }

  /**
   * Fails the connection: the close frame (`sent`, `sentReason`) goes out
   * after what is queued, reading stops at once (what the client still
   * sends stays in the kernel, then is dropped with the connection: it
   * costs neither memory nor CPU here), the socket is half-closed once the
   * queue is written, and the TCP connection dropped after
   * {@link FAIL_GRACE_MS}. Listeners hear `close` with `code` and `reason` now.
   */
  #failConnection(sent: number, sentReason: string, code: number, reason: string): void {
    this.#sendClose(sent, sentReason);
    if (this.#reading) stopReading(this.#wire);
    this.#reading = false;
    clearTimeout(this.#closeTimer);
    this.#closeTimer = setTimeout(() => this.#closeTcp(), FAIL_GRACE_MS);
    this.#outbox.endWhenFlushed();
    this.#end(code, reason, false, false);
  }

  #sendClose(code: number | undefined, reason: string | undefined): void {
    if (this.#closeSent) return;
    this.#closeSent = true;
    this.#outbox.enqueue(
      code === undefined || code === CloseCode.noStatus ? closeFrame() : closeFrame(code, reason),
    );
  }

  /** Reads until the end of the stream; frames go to the reader, which calls back. */
  #listen(leftover: Uint8Array): void {
    const keepAlive = this.#scheduler.keepAlive;
    this.#lastRead = keepAlive.now();
    if (leftover.byteLength > 0) this.#reader.read(leftover);
    const wire = this.#wire;
    wire.on("data", (chunk: Uint8Array) => {
      this.#lastRead = keepAlive.now();
      if (this.#reading && !this.#reader.failed && !this.#tcpClosed) this.#reader.read(chunk);
    });
    const lost = () => {
      this.#closeTcp();
      this.#end(CloseCode.abnormal, "", false);
    };
    wire.on("end", lost);
    wire.on("close", lost);
    // An error (a reset, a write to a gone client) is followed by "close".
    wire.on("error", () => {});
    wire.resume();
  }

  #closeTcp(): void {
    if (this.#tcpClosed) return;
    this.#tcpClosed = true;
    clearTimeout(this.#closeTimer);
    this.#outbox.discard();
    this.#wire.destroy();
  }

  /**
   * The connection is over for its listeners: `close` is dispatched once,
   * with the code the client sent (or the one this layer failed it with).
   * With `closeTcp`, the TCP connection is closed now.
   */
  #end(code: number, reason: string, wasClean: boolean, closeTcp = true): void {
    if (this.#state === CLOSED) return;
    this.#state = CLOSED;
    this.#scheduler.keepAlive.unwatch(this);
    if (closeTcp) this.#closeTcp();
    this.#dispatch(new CloseEvent("close", { code, reason, wasClean }));
  }

  #dispatch(event: Event): void {
    this.#listeners.dispatch(this, event);
  }
}
