/**
 * A WebSocket test client: a queue of received JSON messages with timeouts.
 *
 * @module
 */
import assert from "node:assert/strict";
import { delay, Inbox } from "./wait.ts";

/** How long a test waits for a message it expects. */
export const WAIT_MS = 3000;

/** Shark's ok reply to `event`, with the fields it adds or echoes. */
export function okReply(event: string, fields: Record<string, unknown> = {}) {
  return { event, status: "ok", ...fields };
}

/** Shark's error reply to `event`, with the fields it echoes. */
export function errorReply(event: string, error: string, fields: Record<string, unknown> = {}) {
  return { event, status: "error", error, ...fields };
}

/** A connected test client; disposing of it closes the connection. */
export class TestClient {
  readonly socket: WebSocket;
  /** Resolves with the close event, whoever closed. */
  readonly closed: Promise<CloseEvent>;
  readonly #inbox = new Inbox<Record<string, unknown>>();
  #probes = 0;

  private constructor(socket: WebSocket) {
    this.socket = socket;
    socket.binaryType = "arraybuffer";
    this.closed = new Promise((resolve) => socket.addEventListener("close", resolve));
    socket.addEventListener("message", (event) => {
      this.#inbox.push(typeof event.data === "string" ? JSON.parse(event.data) : event.data);
    });
    this.closed.then(() => this.#inbox.close());
  }

  /** Opens a connection; rejects when the upgrade is refused. */
  static connect(url: string, protocols?: string | string[]): Promise<TestClient> {
    const socket = new WebSocket(url, protocols);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.close();
        reject(new Error(`no WebSocket connection to ${url} within ${WAIT_MS} ms`));
      }, WAIT_MS);
      socket.addEventListener("open", () => {
        clearTimeout(timer);
        resolve(new TestClient(socket));
      }, { once: true });
      socket.addEventListener("error", (event) => {
        clearTimeout(timer);
        reject(event);
      }, { once: true });
    });
  }

  /** Sends a JSON value (or raw text/bytes as they are). */
  send(message: unknown): void {
    if (typeof message === "string" || message instanceof Uint8Array) {
      this.socket.send(message);
    } else this.socket.send(JSON.stringify(message));
  }

  /** Sends a request and returns the next message. */
  async request(message: unknown, timeoutMs = WAIT_MS): Promise<Record<string, unknown>> {
    this.send(message);
    return await this.next(timeoutMs);
  }

  /** Authenticates with a ticket and asserts the reply is ok. */
  async auth(ticket: string): Promise<void> {
    assert.deepEqual(await this.request({ event: "auth", ticket }), okReply("auth"));
  }

  /** Asserts the connection is still served: a ping with `data` gets the pong echoing it. */
  async pingPong(data: string): Promise<void> {
    assert.deepEqual(await this.request({ event: "ping", data }), { event: "pong", data });
  }

  /**
   * The messages Shark sent before it handled a ping sent now, in order:
   * what it has sent so far, known without waiting for a silence.
   */
  async sentSoFar(): Promise<Record<string, unknown>[]> {
    const data = `sent so far ${++this.#probes}`;
    this.send({ event: "ping", data });
    const messages = [];
    for (;;) {
      const message = await this.next();
      if (message.event === "pong" && message.data === data) return messages;
      messages.push(message);
    }
  }

  /** Subscribes with the request's extra fields and asserts the reply is ok; returns it. */
  async subscribe(
    subscription: string,
    extra: Record<string, unknown> = {},
  ): Promise<Record<string, unknown>> {
    const reply = await this.request({ event: "subscribe", subscription, ...extra });
    assert.equal(reply.status, "ok", JSON.stringify(reply));
    return reply;
  }

  /** The next message; rejects after `timeoutMs`, or at once when the connection closed. */
  next(timeoutMs = WAIT_MS): Promise<Record<string, unknown>> {
    return this.#inbox.next(timeoutMs);
  }

  /** The next `count` messages. */
  async take(count: number, timeoutMs = WAIT_MS): Promise<Record<string, unknown>[]> {
    const messages = [];
    for (let i = 0; i < count; i++) messages.push(await this.next(timeoutMs));
    return messages;
  }

  /** Resolves when nothing arrives for `ms`; rejects with what arrived. */
  async silence(ms = 300): Promise<void> {
    await delay(ms);
    if (this.#inbox.size > 0) {
      throw new Error(`unexpected message: ${JSON.stringify(this.#inbox.peek())}`);
    }
  }

  /** Closes the connection and waits until it is closed. */
  async close(): Promise<CloseEvent> {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.close(1000);
    return await this.closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
