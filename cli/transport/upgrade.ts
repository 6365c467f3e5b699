/**
 * The upgrade seam of Shark's own transport: the handler (the engine) calls
 * {@link upgradeWebSocket} on a request the server is holding, as it would
 * call `Deno.upgradeWebSocket`, and the server opens the socket once the
 * handler has answered.
 *
 * @module
 */
import type net from "node:net";
import { WebSocketConnection } from "./connection.ts";
import type { TransportFailure } from "./failure.ts";
import type { TransportScheduler } from "./scheduler.ts";
import type { UpgradeRequest } from "../../src/socket.ts";

/** What an upgraded connection takes from its server's options. */
export interface UpgradeOptions {
  readonly maxMessageBytes: number;
  readonly onFail?: (failure: TransportFailure) => void;
  readonly scheduler: TransportScheduler;
}

/** An upgrade request while the handler decides on it. */
export interface PendingUpgrade {
  readonly conn: net.Socket;
  readonly options: UpgradeOptions;
  readonly key: string;
  readonly leftover: Uint8Array;
  accepted?: { readonly socket: WebSocketConnection; readonly response: Response };
}

/** Upgrade requests of every server in this isolate (a `Request`, or header fields alone), while their handler runs. */
export const upgrades = new WeakMap<Request | UpgradeRequest, PendingUpgrade>();

/**
 * `Deno.upgradeWebSocket` for the requests of a `TransportServer`
 * (any of this isolate's): the socket opens once the handler returns
 * `response`. Throws a `TypeError` for any other request.
 *
 * @example
 * ```ts
 * const shark = new Shark(config, { upgradeWebSocket });
 * await TransportServer.listen(options, (request, info) => shark.handle(request, info));
 * ```
 */
export function upgradeWebSocket(
  request: Request | UpgradeRequest,
  options: { idleTimeout?: number } = {},
): { socket: WebSocketConnection; response: Response } {
  const pending = upgrades.get(request);
  if (!pending || pending.accepted) {
    throw new TypeError("not a WebSocket upgrade request of this transport");
  }
  const socket = new WebSocketConnection(pending.conn, {
    maxMessageBytes: pending.options.maxMessageBytes,
    idleTimeout: options.idleTimeout ?? 120,
    onFail: pending.options.onFail,
    scheduler: pending.options.scheduler,
  });
  // A placeholder: a Response cannot have status 101; the server writes the real answer.
  const response = new Response(null, { status: 200 });
  pending.accepted = { socket, response };
  return { socket, response };
}
