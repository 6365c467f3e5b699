/**
 * A WebSocket server that speaks Shark's frames as a test scripts them, for
 * client rules that a real Shark produces only under faults (a store that
 * cannot be read, a connection lost while a presence request is on its way)
 * or in an order it does not promise. It answers `auth`, `subscribe` (with a
 * `client` id per connection: `c1`, `c2`, ...) and `unsubscribe` with `ok`
 * and `ping` with a pong, unless the test's {@link FakeShark.answer}, asked
 * first, answers; the test pushes frames and closes connections.
 *
 * @module
 */
import type { JsonObject } from "../../client.ts";
import { waitUntil } from "./wait.ts";

/** Answers one frame of a connection: the reply to send, or none. */
export type Answer = (frame: JsonObject, connection: number) => JsonObject | undefined;

/** The scripted server; disposing of it closes every connection. */
export class FakeShark implements AsyncDisposable {
  /** Frames received, in order, with the connection (from 1) each came on. */
  readonly received: { frame: JsonObject; connection: number }[] = [];
  readonly #sockets: WebSocket[] = [];
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  answer: Answer = () => undefined;

  constructor() {
    this.#server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
      const { socket, response } = Deno.upgradeWebSocket(request);
      const connection = this.#sockets.push(socket);
      socket.onmessage = (event) => {
        const frame = JSON.parse(String(event.data)) as JsonObject;
        this.received.push({ frame, connection });
        const reply = this.answer(frame, connection) ?? this.#default(frame, connection);
        if (reply) socket.send(JSON.stringify(reply));
      };
      return response;
    });
  }

  /** `ws://127.0.0.1:PORT/` */
  get url(): string {
    return `ws://127.0.0.1:${this.#server.addr.port}/`;
  }

  /** Connections accepted so far. */
  get connections(): number {
    return this.#sockets.length;
  }

  /** The frames of `event` received, in order. */
  of(event: string): JsonObject[] {
    return this.received.filter(({ frame }) => frame.event === event).map(({ frame }) => frame);
  }

  /** Waits until connection `connection` (from 1) is open. */
  async open(connection: number): Promise<WebSocket> {
    await waitUntil(
      () => this.#sockets[connection - 1]?.readyState === WebSocket.OPEN,
      5000,
      `connection ${connection}`,
    );
    return this.#sockets[connection - 1];
  }

  /** Sends `frame` on the latest connection. */
  push(frame: JsonObject): void {
    this.#sockets.at(-1)!.send(JSON.stringify(frame));
  }

  /** Closes the latest connection with `code` and `reason`, as Shark does. */
  close(code: number, reason: string): void {
    this.#sockets.at(-1)!.close(code, reason);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const socket of this.#sockets) {
      if (socket.readyState === WebSocket.OPEN) socket.close(1001);
    }
    await this.#server.shutdown();
  }

  #default(frame: JsonObject, connection: number): JsonObject | undefined {
    switch (frame.event) {
      case "auth":
        return { event: "auth", status: "ok" };
      case "subscribe":
        return {
          event: "subscribe",
          subscription: frame.subscription,
          status: "ok",
          client: `c${connection}`,
        };
      case "unsubscribe":
        return { event: "unsubscribe", subscription: frame.subscription, status: "ok" };
      case "ping":
        return { event: "pong", data: frame.data ?? null };
    }
  }
}
