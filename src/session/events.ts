/**
 * The client events of SPEC sections 1 and 12: parsing, the checks in their
 * order, the service callbacks they trigger and the replies, with extra
 * fields echoed as SocketShark does (`replies.ts`).
 *
 * @module
 */
import { Authentication } from "../auth/auth.ts";
import { type Callbacks, errorOf, succeeded } from "../callbacks/callbacks.ts";
import type { Clock } from "../clock.ts";
import type { SharkConfig } from "../config/config.ts";
import { type Position, recoverPosition } from "../pubsub/history.ts";
import { type HistoryRead, type Hub, PubSubUnavailable } from "../delivery/hub.ts";
import type { Lifecycle } from "./lifecycle.ts";
import type { Metrics } from "../metrics/metrics.ts";
import {
  ClientEvent,
  CloseReason,
  ErrorText,
  MAX_EVENT_NAME_LENGTH,
  MAX_JSON_DEPTH,
  MAX_PING_DATA_LENGTH,
  ServerEvent,
} from "../protocol.ts";
import type { ServiceClient, ServiceReply } from "../callbacks/service_client.ts";
import type { ClientFrame, Session } from "./session.ts";
import { Subscription, type SubscriptionContext } from "../delivery/subscription.ts";
import { serviceOf } from "../delivery/subscription_name.ts";
import { isObject, type JsonObject, nestsDeeperThan, pick } from "../json.ts";
import type { Presence } from "../presence/presence.ts";
import { cut, EventError, reply, type ReplyContext } from "./replies.ts";

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** The parts of the engine event handling talks to. */
export interface EventDependencies {
  readonly config: SharkConfig;
  readonly client: ServiceClient;
  readonly callbacks: Callbacks;
  readonly hub: Hub;
  readonly lifecycle: Lifecycle;
  readonly metrics: Metrics;
  readonly presence: Presence;
  /** The time the subscriptions' rules read; defaults to the runtime's. */
  readonly clock?: Clock;
}

/**
 * Handles client events.
 *
 * @example
 * ```ts
 * const events = new EventHandler({ config, client, callbacks, hub, lifecycle, metrics, presence });
 * await events.handle(session, '{"event":"ping","data":"x"}');
 * ```
 */
export class EventHandler {
  readonly #deps: EventDependencies;
  readonly #authentication: Authentication;
  readonly #subscriptionContext: SubscriptionContext;

  constructor(dependencies: EventDependencies) {
    this.#deps = dependencies;
    this.#subscriptionContext = {
      metrics: dependencies.metrics,
      maxKeys: dependencies.config.delivery.max_keys_per_subscription,
      clock: dependencies.clock,
    };
    this.#authentication = new Authentication(
      dependencies.config.authentication,
      dependencies.client,
      dependencies.metrics,
    );
  }

  /** Aborts authentication work in progress (a JWKS fetch), at shutdown. */
  close(): void {
    this.#authentication.close();
  }

  /** Handles one frame of a session; never rejects. */
  async handle(session: Session, frame: ClientFrame): Promise<void> {
    const request = this.#parse(session, frame);
    if (!request) return;
    const event = request.event as string;
    const context: ReplyContext = { event, extra: {} };
    const label = Object.hasOwn(ClientEvent, event) ? event : "unknown";
    try {
      await this.#dispatch(session, request, context);
      this.#deps.metrics.event(label, "ok");
    } catch (error) {
      this.#deps.metrics.event(label, "error");
      if (error instanceof EventError) {
        reply(session, context, "error", error.data, error.error);
        return;
      }
      session.log.error("unhandled exception in {event}: {error}", {
        event,
        error: error instanceof Error ? error.stack : String(error),
      });
      reply(session, context, "error", undefined, ErrorText.unhandledException);
      session.close(CloseReason.internalError);
    }
  }

  #parse(session: Session, frame: ClientFrame): JsonObject | undefined {
    let request: unknown;
    let text: string;
    try {
      text = typeof frame === "string" ? frame : strictUtf8.decode(frame);
      request = JSON.parse(text);
    } catch {
      return this.#malformed(session, ErrorText.invalidEvent);
    }
    if (text.length > 2 * MAX_JSON_DEPTH && nestsDeeperThan(request, MAX_JSON_DEPTH)) {
      return this.#malformed(session, ErrorText.tooDeeplyNested);
    }
    if (!isObject(request) || typeof request.event !== "string") {
      return this.#malformed(session, ErrorText.invalidEvent);
    }
    const event = request.event;
    if (event.length > MAX_EVENT_NAME_LENGTH && [...event].length > MAX_EVENT_NAME_LENGTH) {
      return this.#malformed(session, ErrorText.invalidEvent);
    }
    return request;
  }

  #malformed(session: Session, error: string): undefined {
    this.#deps.metrics.event("invalid", "error");
    session.send({ status: "error", error });
    return undefined;
  }

  #dispatch(session: Session, request: JsonObject, context: ReplyContext): Promise<void> | void {
    switch (context.event) {
      case ClientEvent.ping: {
        const data = request.data;
        session.send({
          event: ServerEvent.pong,
          data: typeof data === "string" ? cut(data, MAX_PING_DATA_LENGTH) : null,
        });
        return;
      }
      case ClientEvent.auth:
        return this.#auth(session, request, context);
      case ClientEvent.subscribe:
        return this.#subscribe(session, request, context);
      case ClientEvent.message:
        return this.#message(session, request, context);
      case ClientEvent.unsubscribe:
        return this.#unsubscribe(session, request, context);
      case ClientEvent.presence:
        return this.#presence(session, request, context);
      default:
        throw new EventError(ErrorText.eventNotFound);
    }
  }

  async #auth(session: Session, request: JsonObject, context: ReplyContext): Promise<void> {
    const result = await this.#authentication.authenticate(request, session);
    if ("error" in result) throw new EventError(result.error);
    session.authInfo = result.authInfo;
    session.authenticated = true;
    session.expireAuthIn(result.expiresIn);
    reply(session, context, "ok");
  }

  /** Subscribe checks 1 and 2, shared by subscribe, message and unsubscribe. */
  #target(request: JsonObject, context: ReplyContext) {
    const name = typeof request.subscription === "string" ? request.subscription : "";
    if (name) context.subscription = name;
    const serviceName = serviceOf(name);
    if (serviceName === undefined) throw new EventError(ErrorText.invalidSubscriptionFormat);
    const services = this.#deps.config.services;
    if (!Object.hasOwn(services, serviceName)) throw new EventError(ErrorText.invalidService);
    const service = services[serviceName];
    context.extra = pick(request, service.extra_fields);
    return { name, service };
  }

  async #subscribe(session: Session, request: JsonObject, context: ReplyContext): Promise<void> {
    const { name, service } = this.#target(request, context);
    const from = service.history ? this.#recoverFrom(request) : undefined;
    if (service.require_authentication && !session.authenticated) {
      throw new EventError(ErrorText.authRequired);
    }
    if (session.subscriptions.has(name)) throw new EventError(ErrorText.alreadySubscribed);
    const { callbacks, config, hub, lifecycle, metrics, presence } = this.#deps;
    if (session.subscriptions.size >= config.server.max_subscriptions) {
      metrics.limited("max_subscriptions");
      throw new EventError(ErrorText.tooManySubscriptions);
    }
    const subscription = new Subscription(
      session,
      name,
      service,
      context.extra,
      this.#subscriptionContext,
    );
    const authorized = await callbacks.authorize(subscription);
    if (!succeeded(authorized)) throw new EventError(errorOf(authorized, ErrorText.unauthorized));
    if (session.closed) return;
    try {
      await hub.join(subscription);
    } catch (error) {
      throw this.#unavailable(session, error);
    }
    // From here the topic holds the subscription: unless it is begun, every
    // way out takes it out again. Once before_subscribe was called, the
    // service may have confirmed it and is told it ended, unless it said no.
    let refused = false;
    let history: HistoryRead | undefined;
    let before: ServiceReply;
    try {
      before = await callbacks.call(subscription, "before_subscribe");
      if (!succeeded(before)) {
        refused = true;
        throw new EventError(errorOf(before, ErrorText.unhandledException), before.data);
      }
      if (service.history) history = await hub.readHistory(subscription, from);
      // A member before the ok reply: in every presence read that starts after it.
      if (service.presence && !session.closed) await presence.enter(subscription);
      if (!session.closed) {
        subscription.seedOrder(before.options);
        lifecycle.begin(session, subscription);
      }
    } catch (error) {
      if (refused) lifecycle.detach(session, subscription);
      else await lifecycle.end(session, subscription);
      throw this.#unavailable(session, error);
    }
    if (session.closed) return lifecycle.end(session, subscription);
    if (history) context.tail = this.#positionReply(history, from);
    if (service.presence) context.tail = { ...context.tail, client: session.client };
    reply(session, context, "ok", before.data);
    subscription.release(history?.replay && { deliveries: history.replay, upTo: history.position });
    await callbacks.call(subscription, "on_subscribe");
  }

  /** The subscribe request's `recover` position (checked after subscribe check 2). */
  #recoverFrom(request: JsonObject): Position | undefined {
    if (!Object.hasOwn(request, "recover")) return undefined;
    const position = recoverPosition(request.recover);
    if (!position) throw new EventError(ErrorText.invalidRecoverPosition);
    return position;
  }

  /** The position keys of a history service's subscribe reply, counting a recovery's outcome. */
  #positionReply(history: HistoryRead, from: Position | undefined): JsonObject {
    const { offset, epoch } = history.position;
    if (!from) return { offset, epoch };
    const recovered = history.replay !== undefined;
    this.#deps.metrics.recovery(recovered ? "recovered" : "not_recovered");
    return { offset, epoch, recovered };
  }

  /** The pub/sub backend could not serve a subscribe: logged, and the client told. */
  #unavailable(session: Session, error: unknown): unknown {
    if (!(error instanceof PubSubUnavailable)) return error;
    session.log.warn("{error}", { error: error.message });
    return new EventError(ErrorText.serviceUnavailable);
  }

  async #message(session: Session, request: JsonObject, context: ReplyContext): Promise<void> {
    const { name } = this.#target(request, context);
    const subscription = session.subscriptions.get(name);
    if (!subscription) throw new EventError(ErrorText.subscriptionNotFound);
    context.extra = subscription.extra;
    const answer = await this.#deps.callbacks.call(subscription, "on_message", {
      data: request.data ?? null,
    });
    if (!succeeded(answer)) {
      throw new EventError(errorOf(answer, ErrorText.unhandledException), answer.data);
    }
    if (Object.hasOwn(answer, "data")) reply(session, context, "ok", answer.data);
  }

  async #unsubscribe(session: Session, request: JsonObject, context: ReplyContext): Promise<void> {
    const { name } = this.#target(request, context);
    const subscription = session.subscriptions.get(name);
    if (!subscription) throw new EventError(ErrorText.subscriptionNotFound);
    context.extra = subscription.extra;
    const { callbacks, lifecycle } = this.#deps;
    const before = await callbacks.call(subscription, "before_unsubscribe");
    if (!succeeded(before)) {
      throw new EventError(errorOf(before, ErrorText.unhandledException), before.data);
    }
    const left = lifecycle.detach(session, subscription);
    if (!left) throw new EventError(ErrorText.subscriptionNotFound);
    reply(session, context, "ok", before.data);
    await Promise.all([left, callbacks.call(subscription, "on_unsubscribe")]);
  }

  /** SPEC section 12: the members of a topic the session is subscribed to. */
  async #presence(session: Session, request: JsonObject, context: ReplyContext): Promise<void> {
    const { name, service } = this.#target(request, context);
    if (!service.presence) throw new EventError(ErrorText.presenceNotEnabled);
    const subscription = session.subscriptions.get(name);
    if (!subscription) throw new EventError(ErrorText.subscriptionNotFound);
    context.extra = subscription.extra;
    try {
      context.tail = { ...await this.#deps.presence.read(name, service.presence) };
    } catch (error) {
      throw this.#unavailable(session, error);
    }
    reply(session, context, "ok");
  }
}
