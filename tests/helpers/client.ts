/**
 * A WebSocket test client: a queue of received JSON messages with timeouts.
 *
 * @module
 */

/** How long a test waits for a message it expects. */
export const WAIT_MS = 3000;

/** A connected test client. */
export class TestClient {
  readonly socket: WebSocket;
  /** Resolves with the close event, whoever closed. */
  readonly closed: Promise<CloseEvent>;
  readonly #queue: unknown[] = [];
  readonly #raw: (string | ArrayBuffer)[] = [];
  #waiter: (() => void) | undefined;

  private constructor(socket: WebSocket) {
    this.socket = socket;
    socket.binaryType = "arraybuffer";
    this.closed = new Promise((resolve) => socket.addEventListener("close", resolve));
    socket.addEventListener("message", (event) => {
      this.#raw.push(event.data);
      this.#queue.push(typeof event.data === "string" ? JSON.parse(event.data) : event.data);
      this.#waiter?.();
    });
    this.closed.then(() => this.#waiter?.());
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

  /** The next message; rejects after `timeoutMs`. */
  async next(timeoutMs = WAIT_MS): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    while (this.#queue.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no message within ${timeoutMs} ms`);
      if (this.socket.readyState === WebSocket.CLOSED) throw new Error("connection closed");
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#waiter = undefined;
    }
    return this.#queue.shift() as Record<string, unknown>;
  }

  /** The next `count` messages. */
  async take(count: number, timeoutMs = WAIT_MS): Promise<Record<string, unknown>[]> {
    const messages = [];
    for (let i = 0; i < count; i++) messages.push(await this.next(timeoutMs));
    return messages;
  }

  /** Resolves when nothing arrives for `ms`; rejects with what arrived. */
  async silence(ms = 300): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    if (this.#queue.length > 0) {
      throw new Error(`unexpected message: ${JSON.stringify(this.#queue[0])}`);
    }
  }

  /** Closes the connection and waits until it is closed. */
  async close(): Promise<CloseEvent> {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.close(1000);
    return await this.closed;
  }
}
