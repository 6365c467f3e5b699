/**
 * One session's subscription to one topic: its fields, its timers and the
 * delivery rules of SPEC section 4 (filter fields, order, throttle). State
 * for order and throttle is only allocated when a publisher uses them. Time
 * is read through a {@link Clock}, so that the rules can be tested without
 * waiting.
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import { type Clock, REAL_CLOCK } from "../clock.ts";
import type { ServiceConfig } from "../config/config.ts";
import { bucketOf, Delivery } from "./envelope.ts";
import type { Position } from "../pubsub/history.ts";
import type { Metrics } from "../metrics/metrics.ts";
import { isObject, jsonEqual, type JsonObject, parseNumber } from "../json.ts";

/** Messages held for a subscription while its `before_subscribe` runs. */
export const MAX_HELD_MESSAGES = 10_000;

/** What a subscription needs of the session that holds it. */
export interface Subscriber {
  /** The session's logger. */
  readonly log: Logger;
  /** The session's auth info (auth fields of the last successful `auth`). */
  readonly authInfo: JsonObject;
  /** The connection's `client` id (SPEC section 12). */
  readonly client: string;
  /** Sends a message frame to the client; `false` when it could not. */
  deliver(frame: string): boolean;
  /** Sends a frame that is not a published message (a `join` or `leave`); `false` when it could not. */
  notify(frame: string): boolean;
  /** Aborted when the session closes: the callbacks it no longer owes stop waiting. */
  readonly signal?: AbortSignal;
}

/**
 * A frame for subscribers that the delivery rules of SPEC section 4 do not
 * apply to: a `join` or `leave` (SPEC section 12). It is held with the
 * messages while the subscription is, so that it keeps its place among them.
 */
export interface Notice {
  /** The event it carries, for the metrics. */
  readonly event: "join" | "leave";
  /** The frame for a subscription whose extra fields serialize to `extra`. */
  frame(extra: string): string;
}

/** What a successful recovery hands to {@link Subscription.release}. */
export interface Replay {
  /** The recovered envelopes, in offset order. */
  readonly deliveries: readonly Delivery[];
  /** The position the history was read at: the last recovered offset. */
  readonly upTo: Position;
}

/** What the subscriptions of one engine share. */
export interface SubscriptionContext {
  readonly metrics: Metrics;
  /**
   * `delivery.max_keys_per_subscription`: the `order_key` and the
   * `throttle_key` values each rule remembers; beyond it the least recently
   * updated is forgotten.
   */
  readonly maxKeys: number;
  /** The time the rules read; tests pass a fake one. Defaults to the runtime's. */
  readonly clock?: Clock;
}

interface ThrottleState {
  lastSent: number;
  pending: Delivery | undefined;
  timer: unknown;
}

/**
 * A subscription. Created when a `subscribe` event passes its first checks;
 * it holds published messages until {@link Subscription.release} confirms it.
 */
export class Subscription {
  /** The subscription name, `SERVICE.TOPIC`. */
  readonly name: string;
  /** The service's configuration. */
  readonly service: ServiceConfig;
  /** The session holding it. */
  readonly session: Subscriber;
  /** The request's values for the service's `extra_fields`. */
  readonly extra: JsonObject;
  /** {@link extra} serialized as `,"key":value...`, spliced into shared frames. */
  readonly extraJson: string;
  /** The authorizer fields last returned, `null` before the first authorization. */
  authorizerData: JsonObject | null = null;
  /** False once the subscription has ended; pending work checks it after each await. */
  active = true;
  /** Whether published messages are held until {@link release}. */
  #holding = true;
  #held: (Delivery | Notice)[] | undefined;
  /** After a recovery: positions up to this one were replayed and are not sent again. */
  #replayedUpTo: Position | undefined;
  #timers: Set<unknown> | undefined;
  /** Order and throttle state by key, least recently updated first. */
  #order: Map<unknown, number> | undefined;
  #throttles: Map<unknown, ThrottleState> | undefined;
  readonly #metrics: Metrics;
  readonly #clock: Clock;
  readonly #maxKeys: number;

  constructor(
    session: Subscriber,
    name: string,
    service: ServiceConfig,
    extra: JsonObject,
    context: SubscriptionContext,
  ) {
    this.session = session;
    this.name = name;
    this.service = service;
    this.extra = extra;
    this.extraJson = Object.entries(extra)
      .map(([key, value]) => `,${JSON.stringify(key)}:${JSON.stringify(value)}`)
      .join("");
    this.#metrics = context.metrics;
    this.#clock = context.clock ?? REAL_CLOCK;
    this.#maxKeys = context.maxKeys;
  }

  /**
   * The body of a service callback: the subscription name, extra fields,
   * authorizer fields and auth info (auth info wins), plus `more`.
   */
  callbackBody(more?: JsonObject): JsonObject {
    return {
      subscription: this.name,
      ...this.extra,
      ...this.authorizerData,
      ...this.session.authInfo,
      ...more,
    };
  }

  /** Applies the delivery rules to a published message and sends it if they pass. */
  offer(delivery: Delivery): void {
    if (this.#holding) return this.#hold(delivery);
    if (this.#replayedUpTo && this.#replayed(delivery)) return;
    if (this.#passes(delivery)) this.session.deliver(delivery.frame(this.extraJson));
  }

  /** Sends a notice as it is, or holds it with the messages until {@link release}. */
  notify(notice: Notice): void {
    if (this.#holding) return this.#hold(notice);
    this.#notify(notice);
  }

  #hold(item: Delivery | Notice): void {
    const held = this.#held ??= [];
    if (held.length < MAX_HELD_MESSAGES) held.push(item);
    else this.#metrics.dropped("held_overflow");
  }

  #notify(notice: Notice): void {
    if (this.session.notify(notice.frame(this.extraJson))) this.#metrics.presenceSent(notice.event);
  }

  /** Runs `task` after `seconds` unless the subscription has ended by then. */
  after(seconds: number, task: () => void): void {
    const timers = this.#timers ??= new Set();
    const timer = this.#clock.setTimeout(() => {
      timers.delete(timer);
      if (this.active) task();
    }, seconds * 1000);
    timers.add(timer);
  }

  /** Seeds the order state from `before_subscribe`'s `options.order`. */
  seedOrder(options: unknown): void {
    if (!isObject(options)) return;
    const order = parseNumber(options.order);
    if (order !== undefined) this.#inOrder(bucketOf(options.order_key), order);
  }

  /**
   * Confirms the subscription: after a recovery, the recovered envelopes go
   * out first; then the messages held since the topic was subscribed, and
   * later ones flow directly; all through the same rules.
   *
   * The no-duplicate rule of a recovery: the history was read after the
   * topic was subscribed, so every envelope published before the read was
   * replayed, and a message held or still arriving with a position up to
   * `replay.upTo` (same epoch) is one of them and is skipped. Positions
   * reach this process in offset order, so the first later one ends the
   * check. Without a recovery every held message is sent, as SPEC section 4
   * says: the client's state comes from `before_subscribe`, which may
   * predate any of them.
   */
  release(replay?: Replay): void {
    const held = this.#held;
    this.#holding = false;
    this.#held = undefined;
    if (replay) {
      this.#metrics.replayed += replay.deliveries.length;
      this.#send(replay.deliveries);
      this.#replayedUpTo = replay.upTo;
    }
    if (held) this.#send(held);
  }

  /** Ends the subscription's timers and pending throttled messages. */
  stop(): void {
    this.active = false;
    this.#holding = false;
    this.#held = undefined;
    if (this.#timers) {
      for (const timer of this.#timers) this.#clock.clearTimeout(timer);
      this.#timers = undefined;
    }
    if (this.#throttles) {
      for (const state of this.#throttles.values()) this.#clock.clearTimeout(state.timer);
      this.#throttles = undefined;
    }
  }

  /** Sends messages later than their fan-out, through the rules; notices as they are. */
  #send(deliveries: readonly (Delivery | Notice)[]): void {
    const sentAt = this.#clock.wallTime();
    for (const delivery of deliveries) {
      if (!this.active) return;
      if (!(delivery instanceof Delivery)) {
        this.#notify(delivery);
        continue;
      }
      if (this.#replayedUpTo && this.#replayed(delivery)) continue;
      if (this.#passes(delivery)) this.session.deliver(delivery.lateFrame(this.extraJson, sentAt));
    }
  }

  /** Whether a recovery already replayed this message; the first one past it ends the check. */
  #replayed(delivery: Delivery): boolean {
    const position = delivery.position;
    if (!position) return false;
    const upTo = this.#replayedUpTo!;
    if (position.epoch === upTo.epoch && position.offset <= upTo.offset) return true;
    this.#replayedUpTo = undefined;
    return false;
  }

  /** The rules of SPEC section 4, in order: filter fields, order, throttle. */
  #passes(delivery: Delivery): boolean {
    const filterFields = this.service.filter_fields;
    if (filterFields.length > 0 && !this.#matchesFilters(delivery.filters(filterFields))) {
      this.#metrics.dropped("filter");
      return false;
    }
    if (delivery.order !== undefined && !this.#inOrder(delivery.orderKey, delivery.order)) {
      this.#metrics.dropped("order");
      return false;
    }
    return delivery.throttle === undefined || this.#throttleAllows(delivery);
  }

  #matchesFilters(filters: [string, unknown][]): boolean {
    for (const [field, value] of filters) {
      const own = this.service.extra_fields.includes(field)
        ? this.extra[field]
        : this.session.authInfo[field];
      if (!jsonEqual(own ?? null, value)) return false;
    }
    return true;
  }

  #inOrder(key: unknown, order: number): boolean {
    const orders = this.#order ??= new Map();
    const last = orders.get(key);
    if (last !== undefined) {
      if (order <= last) return false;
      // Re-inserted last; a lone key (the usual case) is last already.
      if (orders.size > 1) orders.delete(key);
    } else if (orders.size >= this.#maxKeys) {
      orders.delete(orders.keys().next().value);
      this.#metrics.limited("order_keys");
    }
    orders.set(key, order);
    return true;
  }

  /** SocketShark's throttle: first at once, then one per period, the last always. */
  #throttleAllows(delivery: Delivery): boolean {
    const throttles = this.#throttles ??= new Map();
    const now = this.#clock.now();
    const key = delivery.throttleKey;
    const state = throttles.get(key);
    if (!state) {
      if (throttles.size >= this.#maxKeys) this.#forgetThrottle(throttles);
      throttles.set(key, { lastSent: now, pending: undefined, timer: undefined });
      return true;
    }
    if (throttles.size > 1) {
      throttles.delete(key);
      throttles.set(key, state);
    }
    if (state.timer !== undefined) {
      if (state.pending) this.#metrics.dropped("throttle_replaced");
      state.pending = delivery;
      return false;
    }
    const period = delivery.throttle! * 1000;
    if (now - state.lastSent < period) {
      state.pending = delivery;
      state.timer = this.#clock.setTimeout(() => {
        state.timer = undefined;
        const pending = state.pending;
        state.pending = undefined;
        if (!pending || !this.active) return;
        state.lastSent = this.#clock.now();
        this.session.deliver(pending.lateFrame(this.extraJson, this.#clock.wallTime()));
      }, state.lastSent + period - now);
      return false;
    }
    state.lastSent = now;
    return true;
  }

  /**
   * Forgets the least recently updated throttle key. A message it was holding
   * goes out now rather than never: the last one always arrives.
   */
  #forgetThrottle(throttles: Map<unknown, ThrottleState>): void {
    const [key, state] = throttles.entries().next().value!;
    throttles.delete(key);
    this.#metrics.limited("throttle_keys");
    this.#clock.clearTimeout(state.timer);
    if (state.pending) {
      this.session.deliver(state.pending.lateFrame(this.extraJson, this.#clock.wallTime()));
    }
  }
}
