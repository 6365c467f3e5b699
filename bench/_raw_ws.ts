/**
 * Benchmark WebSocket clients. The raw one speaks just enough RFC 6455 over
 * `node:net` to be cheap: an HTTP upgrade, a frame loop that counts
 * published-message frames and reads their `data.t` from the bytes (never
 * decoded, never parsed as JSON), masked text frames out, pong and close;
 * the frames are those of the tests' codec (`tests/helpers/ws_frame.ts`). It
 * can bind a local address (127.0.0.1–127.0.0.8), which Deno's `WebSocket`
 * and `Deno.connect` cannot, so that more sockets fit than one address has
 * ports.
 *
 * The same parser over `Deno.connect`, and Deno's `WebSocket` client, are
 * kept to check on the same workload which client is cheapest
 * (`deno task bench clients`).
 *
 * @module
 */
import net from "node:net";
import { Inbox } from "../tests/helpers/wait.ts";
import {
  clientFrame,
  concat,
  frameAt,
  Opcode,
  upgradeRequest,
  upgradeResponse,
} from "../tests/helpers/ws_frame.ts";

/** Receives the published-message frames of every client of a run. */
export interface MessageSink {
  /**
   * A `{"event":"message",...}` frame arrived. `sentAt` is the `t` the
   * publisher put first in `data` (epoch milliseconds, `NaN` when absent);
   * `now` is `performance.timeOrigin + performance.now()` when the chunk was read.
   */
  message(sentAt: number, now: number): void;
  /** A presence `join` or `leave` frame arrived (counted, never queued as a reply). */
  presence?(event: "join" | "leave", now: number): void;
}

/** Where and how a client connects. */
export interface ConnectOptions {
  /** The server's port on 127.0.0.1. */
  readonly port: number;
  /** The local address to bind (raw client only). */
  readonly localAddress?: string;
  /** Gets the published-message frames. */
  readonly sink: MessageSink;
  /** Gives up on the connection and upgrade after this long. */
  readonly timeoutMs: number;
}

/** A benchmark client connection, whatever its implementation. */
export interface BenchClient {
  /** Sends a text frame. */
  send(text: string): void;
  /** The next frame that is not a published message (a reply), as text. */
  reply(timeoutMs: number): Promise<string>;
  /** Whether the connection is closed. */
  readonly closed: boolean;
  /** Published-message frames received so far. */
  readonly received: number;
  /** Closes the connection without waiting. */
  close(): void;
}

/**
 * The implementations a load generator can use: `raw` (RFC 6455 over
 * `node:net`, binds local addresses), `deno-connect` (the same over
 * `Deno.connect`, one local address only) and `websocket` (Deno's client).
 */
export type ClientKind = "raw" | "deno-connect" | "websocket";

/** Opens a client of `kind`. */
export function connectClient(kind: ClientKind, options: ConnectOptions): Promise<BenchClient> {
  switch (kind) {
    case "raw":
      return NodeNetClient.connect(options);
    case "deno-connect":
      return DenoConnectClient.connect(options);
    case "websocket":
      return SocketClient.connect(options);
  }
}

/** `{"event":"message"`: the bytes at offsets 10–16 spell `message`. */
function isMessageFrame(bytes: Uint8Array, start: number, end: number): boolean {
  return end - start > 18 && bytes[start + 10] === 0x6d && bytes[start + 11] === 0x65 &&
    bytes[start + 12] === 0x73 && bytes[start + 16] === 0x65 && bytes[start + 17] === 0x22;
}

/** `{"event":"join"` or `{"event":"leave"`: the event name starts at offset 10. */
function presenceEventOf(
  bytes: Uint8Array,
  start: number,
  end: number,
): "join" | "leave" | undefined {
  if (end - start < 16) return undefined;
  if (bytes[start + 10] === 0x6a && bytes[start + 14] === 0x22) return "join";
  if (bytes[start + 10] === 0x6c && bytes[start + 15] === 0x22) return "leave";
  return undefined;
}

/** Reads the number after `"t":` in `bytes[from, end)`; `NaN` when there is none. */
function timestampIn(bytes: Uint8Array, from: number, end: number): number {
  let at = from;
  for (; at + 4 < end; at++) {
    if (
      bytes[at] === 0x22 && bytes[at + 1] === 0x74 && bytes[at + 2] === 0x22 &&
      bytes[at + 3] === 0x3a
    ) {
      break;
    }
  }
  at += 4;
  if (at >= end) return NaN;
  let value = 0;
  let digit = bytes[at];
  if (digit < 0x30 || digit > 0x39) return NaN;
  for (; at < end && (digit = bytes[at]) >= 0x30 && digit <= 0x39; at++) {
    value = value * 10 + digit - 0x30;
  }
  if (digit === 0x2e) {
    let scale = 0.1;
    for (at++; at < end && (digit = bytes[at]) >= 0x30 && digit <= 0x39; at++) {
      value += (digit - 0x30) * scale;
      scale /= 10;
    }
  }
  return value;
}

/** The wall clock in epoch milliseconds with sub-millisecond precision. */
export function epochNow(): number {
  return performance.timeOrigin + performance.now();
}

const UPGRADE_KEY = "c2hhcmstYmVuY2gta2V5IQ==";
const decoder = new TextDecoder();

/** How a raw client writes and ends its TCP connection. */
interface Transport {
  write(bytes: Uint8Array): void;
  destroy(): void;
}

/**
 * The RFC 6455 client side over any byte transport: the upgrade, then a
 * frame parser that counts published messages and queues replies.
 */
abstract class RawClient implements BenchClient {
  readonly #sink: MessageSink;
  readonly #replies = new Inbox<string>();
  readonly #opened: PromiseWithResolvers<void> = Promise.withResolvers();
  #rest: Uint8Array | undefined;
  #upgraded = false;
  #closed = false;
  received = 0;

  constructor(sink: MessageSink, timeoutMs: number) {
    this.#sink = sink;
    const timer = setTimeout(
      () => this.end(new Error(`no upgrade within ${timeoutMs} ms`)),
      timeoutMs,
    );
    this.#opened.promise.then(() => clearTimeout(timer), () => clearTimeout(timer));
  }

  /** The connection's transport, once connected. */
  protected abstract get transport(): Transport | undefined;

  /** Resolves once the server accepted the upgrade. */
  get opened(): Promise<void> {
    return this.#opened.promise;
  }

  get closed(): boolean {
    return this.#closed;
  }

  send(text: string): void {
    if (!this.#closed) this.transport?.write(clientFrame(Opcode.text, text));
  }

  reply(timeoutMs: number): Promise<string> {
    return this.#replies.next(timeoutMs);
  }

  close(): void {
    this.end(new Error("closed by the client"));
  }

  /** Sends the upgrade request once the TCP connection is up. */
  protected upgrade(port: number): void {
    this.transport!.write(upgradeRequest(port, UPGRADE_KEY));
  }

  /** Ends the connection (idempotent); a pending upgrade fails with `error`. */
  protected end(error: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#replies.close();
    this.#opened.reject(error);
    this.#opened.promise.catch(() => {});
    this.transport?.destroy();
  }

  /** Parses what the server sent; `bytes` may be reused by the caller afterwards. */
  protected onData(chunk: Uint8Array): void {
    const now = epochNow();
    let bytes = chunk;
    if (this.#rest) {
      bytes = concat(this.#rest, chunk);
      this.#rest = undefined;
    }
    let offset = 0;
    if (!this.#upgraded) {
      const answer = upgradeResponse(bytes);
      if (!answer) {
        this.#rest = new Uint8Array(bytes);
        return;
      }
      if (answer.status !== 101) {
        this.end(new Error(`upgrade refused: ${answer.statusLine}`));
        return;
      }
      this.#upgraded = true;
      this.#opened.resolve();
      offset = answer.end;
    }
    let frame;
    while ((frame = frameAt(bytes, offset))) {
      const { opcode, start, end } = frame;
      offset = end;
      if (opcode === Opcode.text || opcode === Opcode.binary) {
        if (isMessageFrame(bytes, start, end)) {
          this.received++;
          this.#sink.message(timestampIn(bytes, start + 18, end), now);
          continue;
        }
        const presence = this.#sink.presence && presenceEventOf(bytes, start, end);
        if (presence) this.#sink.presence!(presence, now);
        else this.#replies.push(decoder.decode(bytes.subarray(start, end)));
      } else if (opcode === Opcode.ping) {
        this.transport?.write(clientFrame(Opcode.pong, bytes.subarray(start, end)));
      } else if (opcode === Opcode.close) {
        this.transport?.write(
          clientFrame(Opcode.close, bytes.subarray(start, Math.min(end, start + 2))),
        );
        this.end(new Error("closed by the server"));
        return;
      }
    }
    // A frame split across reads: keep a copy of its start, the read buffer is reused.
    if (offset < bytes.length) this.#rest = new Uint8Array(bytes.subarray(offset));
  }
}

/** The raw client over `node:net`, which can bind a local address. */
class NodeNetClient extends RawClient {
  readonly #socket: net.Socket;

  private constructor(options: ConnectOptions) {
    super(options.sink, options.timeoutMs);
    this.#socket = net.connect({
      host: "127.0.0.1",
      port: options.port,
      localAddress: options.localAddress,
      noDelay: true,
    });
    this.#socket.on("connect", () => this.upgrade(options.port));
    this.#socket.on("data", (chunk: Uint8Array) => this.onData(chunk));
    this.#socket.on("error", (error: Error) => this.end(error));
    this.#socket.on("close", () => this.end(new Error("connection closed")));
  }

  static async connect(options: ConnectOptions): Promise<BenchClient> {
    const client = new NodeNetClient(options);
    await client.opened;
    return client;
  }

  protected get transport(): Transport {
    return this;
  }

  write(bytes: Uint8Array): void {
    this.#socket.write(bytes);
  }

  destroy(): void {
    this.#socket.destroy();
  }
}

/** The raw client over `Deno.connect` (no local address: for comparison). */
class DenoConnectClient extends RawClient {
  #conn: Deno.TcpConn | undefined;
  #writing: Promise<unknown> = Promise.resolve();

  private constructor(options: ConnectOptions) {
    super(options.sink, options.timeoutMs);
  }

  static async connect(options: ConnectOptions): Promise<BenchClient> {
    const client = new DenoConnectClient(options);
    client.#conn = await Deno.connect({ hostname: "127.0.0.1", port: options.port });
    client.#conn.setNoDelay(true);
    client.upgrade(options.port);
    client.#readLoop();
    await client.opened;
    return client;
  }

  protected get transport(): Transport | undefined {
    return this.#conn ? this : undefined;
  }

  write(bytes: Uint8Array): void {
    const conn = this.#conn!;
    // Writes are chained so that frames never interleave.
    this.#writing = this.#writing.then(async () => {
      for (let written = 0; written < bytes.length;) {
        written += await conn.write(bytes.subarray(written));
      }
    }).catch(() => {});
  }

  destroy(): void {
    try {
      this.#conn?.close();
    } catch {
      // Already closed.
    }
  }

  async #readLoop(): Promise<void> {
    const buffer = new Uint8Array(READ_BUFFER_BYTES);
    try {
      for (;;) {
        const read = await this.#conn!.read(buffer);
        if (read === null) break;
        this.onData(buffer.subarray(0, read));
      }
    } catch {
      // Closed under the read.
    }
    this.end(new Error("connection closed"));
  }
}

/** Per-connection read buffer of the `Deno.connect` client. */
const READ_BUFFER_BYTES = 16 * 1024;

/** Deno's `WebSocket` client, for comparison only: it cannot bind a local address. */
class SocketClient implements BenchClient {
  readonly #socket: WebSocket;
  readonly #replies = new Inbox<string>();
  received = 0;

  private constructor(socket: WebSocket, sink: MessageSink) {
    this.#socket = socket;
    socket.onmessage = (event: MessageEvent<string>) => {
      const now = epochNow();
      const text = event.data;
      if (text.startsWith('{"event":"message"')) {
        this.received++;
        const at = text.indexOf('"t":', 18);
        sink.message(at < 0 ? NaN : parseFloat(text.slice(at + 4, at + 40)), now);
      } else this.#replies.push(text);
    };
    socket.onclose = () => this.#replies.close();
  }

  static connect(options: ConnectOptions): Promise<BenchClient> {
    const socket = new WebSocket(`ws://127.0.0.1:${options.port}/`);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.close();
        reject(new Error(`no upgrade within ${options.timeoutMs} ms`));
      }, options.timeoutMs);
      socket.onopen = () => {
        clearTimeout(timer);
        resolve(new SocketClient(socket, options.sink));
      };
      socket.onerror = (event) => {
        clearTimeout(timer);
        reject(new Error(`connect failed: ${(event as ErrorEvent).message ?? "error"}`));
      };
    });
  }

  get closed(): boolean {
    return this.#socket.readyState >= WebSocket.CLOSING;
  }

  send(text: string): void {
    if (!this.closed) this.#socket.send(text);
  }

  reply(timeoutMs: number): Promise<string> {
    return this.#replies.next(timeoutMs);
  }

  close(): void {
    if (!this.closed) this.#socket.close();
  }
}
