/**
 * Benchmark WebSocket clients. The raw one speaks just enough RFC 6455 over
 * `node:net` to be cheap: an HTTP upgrade, a frame parser that counts
 * published-message frames and reads their `data.t` from the bytes (never
 * decoded, never parsed as JSON), masked text frames out, pong and close. It
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

/** Receives the published-message frames of every client of a run. */
export interface MessageSink {
  /**
   * A `{"event":"message",...}` frame arrived. `sentAt` is the `t` the
   * publisher put first in `data` (epoch milliseconds, `NaN` when absent);
   * `now` is `performance.timeOrigin + performance.now()` when the chunk was read.
   */
  message(sentAt: number, now: number): void;
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
const encoder = new TextEncoder();

/** Waiters for replies, shared by every implementation. */
export class ReplyQueue {
  readonly #replies: string[] = [];
  #waiter: (() => void) | undefined;
  #closed = false;

  push(text: string): void {
    this.#replies.push(text);
    this.#waiter?.();
  }

  close(): void {
    this.#closed = true;
    this.#waiter?.();
  }

  async next(timeoutMs: number): Promise<string> {
    const deadline = performance.now() + timeoutMs;
    while (this.#replies.length === 0) {
      if (this.#closed) throw new Error("connection closed");
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`no reply within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#waiter = undefined;
    }
    return this.#replies.shift()!;
  }
}

/** A masked client frame (RFC 6455 5.3: clients must mask). */
function clientFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const length = payload.byteLength;
  const header = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const frame = new Uint8Array(header + 4 + length);
  frame[0] = 0x80 | opcode;
  if (header === 2) frame[1] = 0x80 | length;
  else if (header === 4) {
    frame[1] = 0x80 | 126;
    frame[2] = length >> 8;
    frame[3] = length & 0xff;
  } else {
    frame[1] = 0x80 | 127;
    new DataView(frame.buffer).setUint32(6, length);
  }
  const mask = crypto.getRandomValues(new Uint8Array(4));
  frame.set(mask, header);
  const offset = header + 4;
  for (let i = 0; i < length; i++) frame[offset + i] = payload[i] ^ mask[i & 3];
  return frame;
}

/** Where `\r\n\r\n` starts in `bytes` (the end of an HTTP head), or -1. */
export function indexOfHeaderEnd(bytes: Uint8Array): number {
  for (let at = 0; at + 3 < bytes.length; at++) {
    if (
      bytes[at] === 0x0d && bytes[at + 1] === 0x0a && bytes[at + 2] === 0x0d &&
      bytes[at + 3] === 0x0a
    ) return at;
  }
  return -1;
}

/** `first` and `second` in one array. */
export function concat(first: Uint8Array, second: Uint8Array): Uint8Array {
  const joined = new Uint8Array(first.length + second.length);
  joined.set(first);
  joined.set(second, first.length);
  return joined;
}

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
  readonly #replies = new ReplyQueue();
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
    if (!this.#closed) this.transport?.write(clientFrame(0x1, encoder.encode(text)));
  }

  reply(timeoutMs: number): Promise<string> {
    return this.#replies.next(timeoutMs);
  }

  close(): void {
    this.end(new Error("closed by the client"));
  }

  /** Sends the upgrade request once the TCP connection is up. */
  protected upgrade(port: number): void {
    this.transport!.write(encoder.encode(
      `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
        `Connection: Upgrade\r\nSec-WebSocket-Key: ${UPGRADE_KEY}\r\n` +
        `Sec-WebSocket-Version: 13\r\n\r\n`,
    ));
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
      const headerEnd = indexOfHeaderEnd(bytes);
      if (headerEnd < 0) {
        this.#rest = new Uint8Array(bytes);
        return;
      }
      const status = decoder.decode(bytes.subarray(0, Math.min(headerEnd, 80))).split("\r\n")[0];
      if (!status.startsWith("HTTP/1.1 101")) {
        this.end(new Error(`upgrade refused: ${status}`));
        return;
      }
      this.#upgraded = true;
      this.#opened.resolve();
      offset = headerEnd + 4;
    }
    const size = bytes.length;
    while (offset + 2 <= size) {
      const first = bytes[offset];
      let length = bytes[offset + 1] & 0x7f;
      let header = 2;
      if (length === 126) {
        if (offset + 4 > size) break;
        length = (bytes[offset + 2] << 8) | bytes[offset + 3];
        header = 4;
      } else if (length === 127) {
        if (offset + 10 > size) break;
        const view = new DataView(bytes.buffer, bytes.byteOffset + offset + 2, 8);
        length = view.getUint32(0) * 2 ** 32 + view.getUint32(4);
        header = 10;
      }
      const start = offset + header;
      const end = start + length;
      if (end > size) break;
      offset = end;
      const opcode = first & 0x0f;
      if (opcode === 0x1 || opcode === 0x2) {
        if (isMessageFrame(bytes, start, end)) {
          this.received++;
          this.#sink.message(timestampIn(bytes, start + 18, end), now);
        } else this.#replies.push(decoder.decode(bytes.subarray(start, end)));
      } else if (opcode === 0x9) {
        this.transport?.write(clientFrame(0xa, bytes.subarray(start, end)));
      } else if (opcode === 0x8) {
        this.transport?.write(clientFrame(0x8, bytes.subarray(start, Math.min(end, start + 2))));
        this.end(new Error("closed by the server"));
        return;
      }
    }
    // A frame split across reads: keep a copy of its start, the read buffer is reused.
    if (offset < size) this.#rest = new Uint8Array(bytes.subarray(offset));
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
  readonly #replies = new ReplyQueue();
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
