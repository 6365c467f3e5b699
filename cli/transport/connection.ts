/**
 * One accepted WebSocket connection of Shark's own transport (SPEC section 9,
 * "Transports"): frames read off a `node:net` socket, keep-alive pings, the
 * closing handshake, and an output queue written with one write per turn. It
 * has the members of the runtime's `WebSocket` that a session uses, so that
 * the engine cannot tell the two apart.
 *
 * Why `node:net` and not `Deno.Conn`: a `Deno.Conn.write` is an async op and
 * a promise, ~20 µs of CPU per write on the bench machine with 5,000
 * connections, where a `node:net` write, which the runtime hands to the
 * kernel at once, costs ~9 µs (`bench/write_micro.ts`). When each connection
 * gets one frame per turn (paced or windowed fan-out, one subscriber per
 * topic) every delivery is a write, so that difference is the server's CPU.
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
  textFrame,
} from "./frame.ts";
import { FrameReader, type FrameSink } from "./frame_reader.ts";
import { unwatch, watch } from "./keepalive_sweeper.ts";
import { type ChunkWriter, chunkWriter } from "./chunk_writer.ts";
import { stopReading } from "./stop_reading.ts";

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
  /** How output reaches the socket; by default {@link chunkWriter} of the socket. */
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
 * this is the time the
 * client has to read the close frame before the TCP connection is dropped
 * (RFC 6455 section 7.1.7, "Fail the WebSocket Connection").
 */
export const FAIL_GRACE_MS = 1000;

const EMPTY = new Uint8Array(0);

/**
 * Frames waiting behind a write under way are joined into one buffer by
 * this many: a small frame is a view of a shared slab (`frame.ts`), and a
 * connection that waits long (a slow client) would otherwise keep a slab
 * alive for every few bytes it holds.
 */
const JOIN_WAITING = 64;

type Listener = EventListenerOrEventListenerObject;

/** Joins `chunks` (`total` bytes, counted when not given) into one buffer. */
function join(
  chunks: readonly Uint8Array[],
  total = chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0),
): Uint8Array {
  const all = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.byteLength;
  }
  return all;
}

/**
 * The bytes of `data` as an `ArrayBuffer` of their own: a payload can be a
 * view into the socket's larger read buffer (a `Buffer`, whose `slice` does
 * not copy: hence the constructor).
 */
function arrayBuffer(data: Uint8Array): ArrayBuffer {
  const whole = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
  return (whole ? data : new Uint8Array(data)).buffer as ArrayBuffer;
}

/** Connections with output queued in this turn, written together once the turn's work is done. */
const dirty: WebSocketConnection[] = [];
let flushScheduled = false;

/**
 * The last text frame encoded, and its text: a message fanned out to many
 * connections (the engine sends the same string to each, one after the
 * other) is encoded once, and every output queue holds the same bytes. One
 * entry, not a map by text: where every message goes to one connection (a
 * subscriber per topic), hashing and storing each text costs more than the
 * comparison (~0.6 against ~0.1 µs).
 */
let lastText: string | undefined;
let lastFrame: Uint8Array = new Uint8Array(0);

function flushDirty(): void {
  flushScheduled = false;
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
 * const socket = new WebSocketConnection(tcpSocket, { maxMessageBytes: 65536, idleTimeout: 30 });
 * socket.addEventListener("message", (event) => socket.send((event as MessageEvent).data));
 * socket.open(switchingProtocols(key), leftover);
 * ```
 */
export class WebSocketConnection implements FrameSink {
  /** How binary messages are handed to listeners, as on `WebSocket`. */
  binaryType: BinaryType = "blob";
  readonly #wire: Wire;
  readonly #writer: ChunkWriter;
  readonly #options: ConnectionOptions;
  readonly #reader: FrameReader;
  #state: number = CONNECTING;
  #listeners: Map<string, Listener[]> | undefined;
  #queue: Uint8Array[] | undefined;
  /** Bytes queued and not yet handed to the socket. */
  #queued = 0;
  /**
   * A write is not yet taken by the kernel: what is sent meanwhile waits
   * here and leaves joined in one write once it is (under a burst, frames
   * for a busy client go out many per write, not one write per turn).
   */
  #writing = false;
  /** Frames queued behind the write under way since they were last joined. */
  #waiting = 0;
  readonly #written = () => this.written();
  #dirty = false;
  #closeSent = false;
  /**
   * Once the queue is handed over, end the socket: the server closes TCP
   * first (RFC 6455 section 7.1.1) and, after a protocol error, reads and
   * drops what the client still sends, never buffering it.
   */
  #endAfterFlush = false;
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
    this.#writer = options.writer ?? chunkWriter(wire);
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

  /**
   * Buffers in the output queue: frames waiting behind a write under way are
   * joined by 64, so that a slow client's queue is a few buffers.
   */
  get queuedBuffers(): number {
    return this.#queue?.length ?? 0;
  }

  /** Bytes sent and not yet handed to the operating system (queued here or in the socket). */
  get bufferedAmount(): number {
    return this.#queued + (this.#tcpClosed ? 0 : this.#writer.buffered);
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
    this.#state = OPEN;
    this.#dispatch("open", new Event("open"));
    this.#listen(leftover);
    this.#halfMs = this.#options.idleTimeout * 500;
    if (this.#halfMs > 0) watch(this, this.#halfMs);
    if (this.#closeOnOpen) this.close(...this.#closeOnOpen);
  }

  /** Sends a text (string) or binary (bytes) message. */
  send(data: string | Uint8Array | ArrayBuffer): void {
    if (this.#state === CONNECTING) {
      throw new DOMException("The connection is not open yet.", "InvalidStateError");
    }
    if (this.#state !== OPEN) return;
    if (typeof data !== "string") {
      this.#enqueue(binaryFrame(data instanceof Uint8Array ? data : new Uint8Array(data)));
      return;
    }
    if (data !== lastText) {
      lastFrame = textFrame(data);
      lastText = data;
    }
    this.#enqueue(lastFrame);
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

  /**
   * Hands what is queued to the socket: one write for all of it. Called once
   * per turn by the flush of the dirty list, and when the previous write is
   * done. The write goes to the kernel at once; what the kernel did not take
   * is held below (counted in `bufferedAmount`) until it does.
   */
  flush(): void {
    this.#dirty = false;
    const queue = this.#queue;
    if (this.#writing || this.#tcpClosed || !queue || queue.length === 0) return;
    const chunk = queue.length === 1 ? queue[0] : join(queue, this.#queued);
    queue.length = 0;
    this.#queued = 0;
    this.#waiting = 0;
    this.#writing = !this.#writer.write(chunk, this.#written);
    this.#finishWhenFlushed();
  }

  /** The kernel has taken the last write: what was queued meanwhile goes out (not for other callers). */
  written(): void {
    this.#writing = false;
    if ((this.#queue?.length ?? 0) > 0) this.flush();
    else this.#finishWhenFlushed();
  }

  // FrameSink: what the reader found (not for other callers).

  /** A message from the client. */
  onMessage(data: string | Uint8Array): void {
    if (this.#state !== OPEN) return;
    const value = typeof data === "string"
      ? data
      : this.binaryType === "arraybuffer"
      ? arrayBuffer(data)
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
    this.#endAfterFlush = true;
    this.#closeTimer ??= setTimeout(() => this.#closeTcp(), CLOSE_WAIT_MS);
    this.#finishWhenFlushed();
    this.#end(code, reason, true, false);
  }

  /** The client broke the protocol: close frame with `code`, then the connection ends. */
  onFail(code: number, reason: string): void {
    this.#options.onFail?.(code, reason);
    this.#failConnection(code, reason, code, reason);
  }

  /**
   * Fails the connection: the close frame (`sent`, `reason`) goes out after
   * what is queued, reading stops at once (what the client still sends
   * stays in the kernel, then is dropped with the connection: it costs
   * neither memory nor CPU here), the socket is half-closed once the queue
   * is written, and the TCP connection dropped after {@link FAIL_GRACE_MS}.
   * Listeners hear `close` with `code` and `reason` now.
   */
  #failConnection(sent: number, sentReason: string, code: number, reason: string): void {
    this.#sendClose(sent, sentReason);
    this.#stopReading();
    this.#endAfterFlush = true;
    clearTimeout(this.#closeTimer);
    this.#closeTimer = setTimeout(() => this.#closeTcp(), FAIL_GRACE_MS);
    this.#finishWhenFlushed();
    this.#end(code, reason, false, false);
  }

  #stopReading(): void {
    if (!this.#reading) return;
    this.#reading = false;
    stopReading(this.#wire);
  }

  #enqueue(frame: Uint8Array): void {
    const queue = this.#queue ??= [];
    queue.push(frame);
    this.#queued += frame.byteLength;
    if (this.#writing && ++this.#waiting >= JOIN_WAITING) {
      const tail = queue.splice(queue.length - this.#waiting);
      queue.push(join(tail));
      this.#waiting = 0;
    }
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

  /**
   * Carries out `#endAfterFlush` once this queue is empty: the socket's
   * `end` sends its FIN after what it still holds.
   */
  #finishWhenFlushed(): void {
    if (
      !this.#endAfterFlush || this.#writing || (this.#queue?.length ?? 0) > 0 || this.#tcpClosed
    ) return;
    this.#endAfterFlush = false;
    this.#wire.end();
  }

  /** Reads until the end of the stream; frames go to the reader, which calls back. */
  #listen(leftover: Uint8Array): void {
    this.#lastRead = performance.now();
    if (leftover.byteLength > 0) this.#reader.read(leftover);
    const wire = this.#wire;
    wire.on("data", (chunk: Uint8Array) => {
      this.#lastRead = performance.now();
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
      this.#enqueue(buildFrame(Opcode.ping, EMPTY));
      return;
    }
    if (this.#lastRead > this.#pingedAt) {
      this.#pingedAt = 0;
      return;
    }
    if (now - this.#pingedAt < this.#halfMs) return;
    this.#options.onFail?.(CloseCode.abnormal, "keep-alive timeout");
    this.#failConnection(1011, "keep-alive timeout", CloseCode.abnormal, "");
  }

  #closeTcp(): void {
    if (this.#tcpClosed) return;
    this.#tcpClosed = true;
    clearTimeout(this.#closeTimer);
    this.#queue = undefined;
    this.#queued = 0;
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
