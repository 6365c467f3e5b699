/**
 * The socket a session runs on: the few members of the web-standard
 * `WebSocket` that Shark uses, named as our own so that any transport can
 * carry a session (SPEC sections 1 and 8). The runtime's `WebSocket`
 * satisfies it as it is.
 *
 * @module
 */

/**
 * The four `readyState` values, as the `WebSocket` constants; only `OPEN`
 * accepts `send`. Plain module constants on purpose: in Deno the global
 * `WebSocket` is an accessor, and reading `WebSocket.OPEN` on every `send`
 * of a fan-out made the own transport's burst delivery about 2.5 times
 * slower (`deno task bench fanout`).
 */
export const CONNECTING = 0, OPEN = 1, CLOSING = 2, CLOSED = 3;

/**
 * A server-side client connection, as a session sees it: the runtime's
 * `WebSocket` after an upgrade, or a transport of one's own.
 *
 * What the engine relies on:
 * - Events in order: `message` events are dispatched one at a time, in the
 *   order the frames arrived, each as a `MessageEvent` whose `data` is a
 *   string (text frame) or an `ArrayBuffer` (binary frame, the engine sets
 *   `binaryType` to `"arraybuffer"`).
 * - One `close` event ends every connection, whoever closed it and however
 *   (after an `error` event too, which the engine therefore never listens
 *   to): a `CloseEvent` carrying the code, after which no `message` comes.
 * - `send` and `close` never block: `send` queues the frame and returns at
 *   once; `bufferedAmount` is the number of bytes queued by `send` and not
 *   yet handed to the network, so it grows while the client does not read.
 *   It may be a call into the runtime: the engine reads it once per several
 *   KiB of output, not after every frame.
 * - `readyState` counts as `WebSocket` does; only {@link OPEN} accepts `send`.
 *
 * @example
 * ```ts
 * Deno.serve((request) => {
 *   const { socket, response } = Deno.upgradeWebSocket(request);
 *   const echo = (client: Socket) =>
 *     client.addEventListener("message", {
 *       handleEvent: (event) => client.send((event as MessageEvent<string>).data),
 *     });
 *   echo(socket);
 *   return response;
 * });
 * ```
 */
export interface Socket {
  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  readonly readyState: number;
  /** Bytes queued by `send` and not yet written to the network. */
  readonly bufferedAmount: number;
  /** How binary frames are delivered; the engine sets `"arraybuffer"`. */
  binaryType: BinaryType;
  /** Queues one frame: a string as a text frame, bytes as a binary frame. */
  send(data: string | Uint8Array): void;
  /** Starts the closing handshake with a close code and reason. */
  close(code?: number, reason?: string): void;
  /** Listens for `message` and `close` events. */
  addEventListener(type: "message" | "close", listener: EventListenerObject): void;
}

/**
 * What the engine reads of an upgrade request: its header fields (`Origin`
 * for `server.allowed_origins` and the log). A `Request` is one; Shark's own
 * transport hands the engine a lighter one (`Engine.upgrade`).
 */
export interface UpgradeRequest {
  readonly headers: { get(name: string): string | null };
}

/**
 * The engine's catch-up gate, as a transport that holds new connections
 * unread asks it (`Engine.admission`): `enter()` resolves when a
 * connection may be read (`undefined`: at once) and holds a place, which
 * its upgrade (passed to `Engine.upgrade` with `admitted`) takes over, or
 * `unused()` gives back when it was no upgrade.
 */
export interface Gateway {
  enter(): Promise<void> | undefined;
  unused(): void;
}

/**
 * Upgrades a request to a WebSocket, as `Deno.upgradeWebSocket` does (whose
 * `WebSocket` is a {@link Socket}).
 * `idleTimeout` (seconds, 0 = off): ping after half of it without traffic from
 * the client, close when the pong does not come within the other half.
 */
export type UpgradeWebSocket = (
  request: Request,
  options: { idleTimeout: number },
) => { socket: Socket; response: Response };

/**
 * The `idleTimeout` of one upgrade for `ws_ping`: its interval plus timeout,
 * ±10% per connection, so that clients that connected together are not all
 * pinged in the same instant, which would stall a fan-out running then.
 *
 * @example
 * ```ts
 * idleTimeoutOf({ interval: 25, timeout: 5 }); // between 27 and 33
 * ```
 */
export function idleTimeoutOf(wsPing: { interval: number; timeout: number }): number {
  const { interval, timeout } = wsPing;
  return interval > 0 ? (interval + timeout) * (0.9 + 0.2 * Math.random()) : 0;
}
