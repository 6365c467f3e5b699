/**
 * The Shark client: one WebSocket to Shark that authenticates, subscribes,
 * reconnects with backoff and re-establishes every subscription, for
 * browsers, Deno, Node 22+ and Bun (web-standard APIs only, no
 * dependencies). It speaks the client protocol of SocketShark and Shark's
 * history recovery, JWT refresh and presence, as `docs/protocol.md` and
 * `docs/presence.md` describe them.
 *
 * ```ts
 * import { SharkClient } from "./mod.ts"; // or "@shark/shark/client"
 *
 * const client = new SharkClient("wss://shark.example.com/", {
 *   auth: async () => {
 *     const response = await fetch("/ws/ticket", { method: "POST" });
 *     return { method: "ticket", ticket: (await response.json()).ticket };
 *   },
 * });
 * client.on("disconnected", ({ code, delay }) => console.log(`closed ${code}, again in ${delay} ms`));
 * const room = client.subscribe("chat.lobby", {
 *   onSubscribed: (reply) => console.log(reply.recovered ? "caught up" : "fresh state", reply.data),
 *   onMessage: (message) => console.log(message.data),
 * });
 * await room.ready;
 * room.send({ text: "hello" });
 * ```
 *
 * How it works, where the protocol leaves room: Shark answers a connection's
 * events one at a time and in order (docs/protocol.md, "Client events"), and answers every
 * event but a `message` whose `on_message` returned no `data`. So the client
 * follows each `message` with a `ping`: the pong (or the reply before it)
 * tells it exactly when and how each message was handled, and every reply is
 * matched to its request by position. Subscribes are sent after `auth`
 * succeeded, in the order the application made them.
 *
 * The close codes that stop reconnecting come from Shark's own table
 * (`CloseReason` in `src/protocol.ts`, a module without imports): only those
 * flagged `reconnect: false` (1009, a frame too big that would be sent
 * again; 4003, the application's backend disconnected the client through
 * Shark's server API; 4008, `server.idle_timeout`: nothing was authenticated
 * or subscribed, and a new connection would idle again). Every other code
 * reconnects, codes Shark never sends included (1006 for a dropped network,
 * whatever a proxy sends).
 *
 * Every wait (backoff, timeouts, JWT refresh) runs on the `clock` option,
 * the runtime's timers by default.
 *
 * The rooms: `shark_client.ts` the connection's life and events,
 * `connection.ts` one socket and its answers in order, `reconnect.ts` when
 * and how soon to reconnect, `liveness.ts` pings, `auth.ts` credentials and
 * JWT refresh, `subscription.ts` a subscription across reconnects,
 * `recovery.ts` history positions, `clock.ts` time, `deferred.ts` promises
 * settled by callback, and the public shapes in `types.ts`, `options.ts` and
 * `errors.ts`.
 *
 * @module
 */
export type { Clock } from "./clock.ts";
export { SharkError } from "./errors.ts";
export type {
  BackoffOptions,
  RequestOptions,
  SharkClientOptions,
  SubscribeOptions,
  WebSocketConstructor,
} from "./options.ts";
export { SharkClient } from "./shark_client.ts";
export type {
  AuthContext,
  ConnectionState,
  Credentials,
  JsonObject,
  JsonValue,
  Member,
  MessageFrame,
  Position,
  Presence,
  SharkClientEventMap,
  SubscribeReply,
  Subscription,
  SubscriptionState,
} from "./types.ts";
