/**
 * Misbehaving peers for the harness, on raw TCP so that every fault can be
 * made exactly: an HTTP service whose every answer is chosen per request
 * (good JSON, hangs, huge or dripping bodies, wrong content types, invalid
 * JSON, connections closed without an answer, 429 with absurd reset headers),
 * which can go down and come back on the same port; and a TCP proxy that
 * delays every byte by an adjustable time (a slow Redis).
 *
 * @module
 */

import { concat, headEnd } from "../tests/helpers/ws_frame.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** How the service answers one request. */
export type Reply =
  /** A JSON body (any value) with a status (200) and extra headers. */
  | {
    readonly kind: "json";
    readonly body: unknown;
    readonly status?: number;
    readonly headers?: Record<string, string>;
  }
  /** These bytes as they are, then the connection is closed. */
  | { readonly kind: "raw"; readonly bytes: Uint8Array }
  /** No answer at all; the connection stays open until the client gives up. */
  | { readonly kind: "hang" }
  /** The connection is closed without an answer. */
  | { readonly kind: "close" }
  /** A complete answer written one byte every `intervalMs`. */
  | { readonly kind: "drip"; readonly text: string; readonly intervalMs: number }
  /** A 200 with a body of `bytes` bytes (`contentType`, JSON by default). */
  | { readonly kind: "huge"; readonly bytes: number; readonly contentType?: string };

/** A request as the service read it. */
export interface ServiceRequest {
  readonly path: string;
  readonly body: string;
}

/** Chooses the answer to a request. */
export type Behaviour = (request: ServiceRequest) => Reply | Promise<Reply>;

/** `status` JSON with `body`: the usual answer. */
export function jsonReply(body: unknown, status = 200, headers: Record<string, string> = {}) {
  return { kind: "json", body, status, headers } as const;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let written = 0; written < bytes.length;) {
    written += await conn.write(bytes.subarray(written));
  }
}

function closeQuietly(closer: { close(): void }): void {
  try {
    closer.close();
  } catch {
    // Already closed.
  }
}

const STATUS_TEXT: Record<number, string> = { 200: "OK", 429: "Too Many Requests" };

/** An HTTP/1.1 service on 127.0.0.1 whose answers a {@link Behaviour} picks. */
export class FaultyService {
  readonly port: number;
  /** Requests received, by path. */
  readonly calls: Map<string, number> = new Map();
  behaviour: Behaviour;
  #listener: Deno.Listener | undefined;
  readonly #conns = new Set<Deno.Conn>();

  private constructor(port: number, behaviour: Behaviour) {
    this.port = port;
    this.behaviour = behaviour;
  }

  /** Listens on a free port (or `port`). */
  static start(behaviour: Behaviour, port = 0): FaultyService {
    const listener = Deno.listen({ hostname: "127.0.0.1", port });
    const service = new FaultyService((listener.addr as Deno.NetAddr).port, behaviour);
    service.#serve(listener);
    return service;
  }

  /** The URL of `path` on this service. */
  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  /** Requests received on `path`. */
  count(path: string): number {
    return this.calls.get(path) ?? 0;
  }

  /** Goes down: stops listening and drops every open connection. */
  down(): void {
    if (this.#listener) closeQuietly(this.#listener);
    this.#listener = undefined;
    for (const conn of this.#conns) closeQuietly(conn);
    this.#conns.clear();
  }

  /** Comes back on the same port. */
  up(): void {
    if (!this.#listener) this.#serve(Deno.listen({ hostname: "127.0.0.1", port: this.port }));
  }

  async #serve(listener: Deno.Listener): Promise<void> {
    this.#listener = listener;
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        return;
      }
      this.#conns.add(conn);
      this.#connection(conn).catch(() => {}).finally(() => {
        this.#conns.delete(conn);
        closeQuietly(conn);
      });
    }
  }

  /** Serves the requests of one kept-alive connection until an answer ends it. */
  async #connection(conn: Deno.Conn): Promise<void> {
    let buffer: Uint8Array = new Uint8Array(0);
    const chunk = new Uint8Array(65536);
    for (;;) {
      let end: number;
      while ((end = headEnd(buffer)) < 0) {
        const n = await conn.read(chunk);
        if (n === null) return;
        buffer = concat(buffer, chunk.subarray(0, n));
      }
      const head = decoder.decode(buffer.subarray(0, end));
      const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
      while (buffer.length < end + 4 + length) {
        const n = await conn.read(chunk);
        if (n === null) return;
        buffer = concat(buffer, chunk.subarray(0, n));
      }
      const path = head.split(" ")[1] ?? "/";
      const body = decoder.decode(buffer.subarray(end + 4, end + 4 + length));
      buffer = buffer.slice(end + 4 + length);
      this.calls.set(path, this.count(path) + 1);
      if (!await this.#answer(conn, await this.behaviour({ path, body }))) return;
    }
  }

  /** Writes the answer; false when the connection ends with it. */
  async #answer(conn: Deno.Conn, reply: Reply): Promise<boolean> {
    switch (reply.kind) {
      case "json": {
        const text = JSON.stringify(reply.body) ?? "null";
        const status = reply.status ?? 200;
        const headers = { "content-type": "application/json", ...reply.headers };
        await writeAll(conn, response(status, headers, text));
        return true;
      }
      case "raw":
        await writeAll(conn, reply.bytes);
        return false;
      case "hang":
        // Read until the client gives up and closes.
        while (await conn.read(new Uint8Array(1024)) !== null) { /* discard */ }
        return false;
      case "close":
        return false;
      case "drip": {
        const bytes = response(200, { "content-type": "application/json" }, reply.text);
        for (let i = 0; i < bytes.length; i++) {
          await writeAll(conn, bytes.subarray(i, i + 1));
          await new Promise((resolve) => setTimeout(resolve, reply.intervalMs));
        }
        return true;
      }
      case "huge": {
        const type = reply.contentType ?? "application/json";
        await writeAll(
          conn,
          encoder.encode(
            `HTTP/1.1 200 OK\r\ncontent-type: ${type}\r\ncontent-length: ${reply.bytes}\r\n\r\n`,
          ),
        );
        const block = encoder.encode("[".repeat(65536));
        for (let sent = 0; sent < reply.bytes; sent += block.length) {
          await writeAll(conn, block.subarray(0, Math.min(block.length, reply.bytes - sent)));
        }
        return false;
      }
    }
  }
}

function response(status: number, headers: Record<string, string>, body: string): Uint8Array {
  const bytes = encoder.encode(body);
  const lines = Object.entries({ ...headers, "content-length": String(bytes.length) })
    .map(([name, value]) => `${name}: ${value}\r\n`).join("");
  const head = encoder.encode(`HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "X"}\r\n${lines}\r\n`);
  return concat(head, bytes);
}

/**
 * A TCP proxy on 127.0.0.1 that passes every chunk on after `delayMs`
 * (changeable while it runs), in order, both ways.
 */
export class DelayProxy {
  readonly port: number;
  /** Milliseconds every chunk waits before it is passed on. */
  delayMs = 0;
  readonly #listener: Deno.Listener;
  readonly #conns = new Set<Deno.Conn>();

  private constructor(listener: Deno.Listener, target: number) {
    this.#listener = listener;
    this.port = (listener.addr as Deno.NetAddr).port;
    this.#accept(target);
  }

  /** Listens on a free port and forwards to `127.0.0.1:target`. */
  static start(target: number): DelayProxy {
    return new DelayProxy(Deno.listen({ hostname: "127.0.0.1", port: 0 }), target);
  }

  /** Stops and drops every connection. */
  close(): void {
    closeQuietly(this.#listener);
    for (const conn of this.#conns) closeQuietly(conn);
  }

  async #accept(target: number): Promise<void> {
    for (;;) {
      let client: Deno.Conn;
      try {
        client = await this.#listener.accept();
      } catch {
        return;
      }
      let server: Deno.Conn;
      try {
        server = await Deno.connect({ hostname: "127.0.0.1", port: target });
      } catch {
        closeQuietly(client);
        continue;
      }
      this.#conns.add(client);
      this.#conns.add(server);
      const end = () => {
        for (const conn of [client, server]) {
          this.#conns.delete(conn);
          closeQuietly(conn);
        }
      };
      Promise.all([this.#pipe(client, server), this.#pipe(server, client)]).finally(end);
    }
  }

  /** Copies `from` to `to`, each chunk written `delayMs` after it was read, in order. */
  async #pipe(from: Deno.Conn, to: Deno.Conn): Promise<void> {
    let writing = Promise.resolve();
    try {
      for (;;) {
        const chunk = new Uint8Array(65536);
        const n = await from.read(chunk);
        if (n === null) break;
        const due = performance.now() + this.delayMs;
        const bytes = chunk.subarray(0, n);
        writing = writing.then(async () => {
          const wait = due - performance.now();
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
          await writeAll(to, bytes);
        });
      }
    } catch {
      // The other side is gone.
    }
    await writing.catch(() => {});
    closeQuietly(to);
  }
}
