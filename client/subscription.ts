/**
 * One subscription as the client holds it across reconnects: subscribed
 * after every `auth` (with its extra fields and, for history services, the
 * last position seen), its messages sent once each and followed by a `ping`
 * whose pong tells exactly when and how each was handled, and ended by
 * `unsubscribe()`, the client's `close()` or Shark. A resubscribe answered
 * `Service unavailable.` is tried again after the client's backoff, on the
 * client's clock. A `presence` request waits, like a message, until
 * subscribed; joins and leaves are routed to their callbacks.
 *
 * @module
 */
import { ClientEvent, ErrorText, ServerEvent } from "../src/protocol.ts";
import type { Clock } from "./clock.ts";
import type { Pending } from "./connection.ts";
import { type Deferred, deferred } from "./deferred.ts";
import { asError, errorOf, SharkError } from "./errors.ts";
import type { RequestOptions, SubscribeOptions } from "./options.ts";
import { advance, recoverField } from "./recovery.ts";
import type {
  JsonObject,
  JsonValue,
  Member,
  MessageFrame,
  Position,
  Presence,
  SubscribeReply,
  Subscription,
  SubscriptionState,
} from "./types.ts";

/** A message (and its ping) or a presence request, waiting to be sent or answered. */
interface Outgoing {
  readonly frames: JsonObject[];
  /** The reply, unless it is an error reply (that goes to `fail`). */
  answer(reply: JsonObject | undefined): void;
  fail(error: SharkError): void;
}

/** What a subscription needs from its client. */
export interface Owner {
  send(frames: JsonObject[], entry: Pending): boolean;
  forget(subscription: ClientSubscription): void;
  report(error: Error): void;
  delay(attempt: number): number;
  /** The client's clock: resubscribe retries and request timeouts wait on it. */
  readonly clock: Clock;
}

/** A subscription of a client: what {@link Subscription} promises, and what the client tells it. */

export class ClientSubscription implements Subscription {
  readonly name: string;
  readonly extra: JsonObject;
  readonly ready: Promise<SubscribeReply>;
  state: SubscriptionState = "subscribing";
  position: Position | undefined;
  client: string | undefined;
  readonly #options: SubscribeOptions;
  readonly #owner: Owner;
  readonly #settle: { resolve(reply: SubscribeReply): void; reject(error: SharkError): void };
  readonly #unsent: Outgoing[] = [];
  /** Subscribed once at least: later subscribes are resubscribes. */
  #subscribed = false;
  /** Subscribed on the current connection. */
  #live = false;
  /** A subscribe is on its way on the current connection. */
  #asked = false;
  #retries = 0;
  #retry: unknown;
  #unsubscribing?: Deferred<void>;

  constructor(name: string, options: SubscribeOptions, owner: Owner) {
    this.name = name;
    this.extra = { ...options.extra };
    this.position = options.position;
    this.#options = options;
    this.#owner = owner;
    const { promise, resolve, reject } = deferred<SubscribeReply>();
    this.ready = promise;
    this.#settle = { resolve, reject };
    // An application that never awaits `ready` must not get an unhandled rejection.
    promise.catch(() => {});
  }

  send(data: JsonValue): void {
    this.#post({
      frames: this.#message(data),
      answer: (reply) => {
        if (reply) this.#call(this.#options.onReply, reply.data ?? null, reply);
      },
      fail: (error) => this.#error(error),
    });
  }

  request(data: JsonValue, options: RequestOptions = {}): Promise<JsonValue | undefined> {
    const { promise, resolve, reject } = deferred<JsonValue | undefined>();
    const timeout = options.timeout ?? 30_000;
    const clock = this.#owner.clock;
    const timer = timeout > 0
      ? clock.setTimeout(() => reject(new SharkError(`no answer within ${timeout} ms`)), timeout)
      : undefined;
    promise.then(() => clock.clearTimeout(timer), () => clock.clearTimeout(timer));
    this.#post({
      frames: this.#message(data),
      answer: (reply) => resolve(reply && (reply.data ?? null)),
      fail: reject,
    });
    return promise;
  }

  presence(): Promise<Presence> {
    const { promise, resolve, reject } = deferred<Presence>();
    this.#post({
      frames: [{ event: ClientEvent.presence, subscription: this.name }],
      answer: (reply) => {
        const { members, clients, users } = reply as unknown as Presence;
        resolve({ members, clients, users });
      },
      fail: reject,
    });
    return promise;
  }

  unsubscribe(): Promise<void> {
    if (this.state === "ended") return Promise.resolve();
    if (this.#unsubscribing) return this.#unsubscribing.promise;
    const unsubscribing = deferred<void>();
    const frame = { event: ClientEvent.unsubscribe, subscription: this.name };
    // A subscribe still on its way is answered first: the unsubscribe follows it.
    const sent = (this.#live || this.#asked) && this.#owner.send([frame], {
      event: ClientEvent.unsubscribe,
      count: 1,
      answer: (reply) => {
        if (reply?.status === "ok" || !this.#live) return this.#end(undefined);
        this.state = "subscribed";
        this.#unsubscribing = undefined;
        unsubscribing.reject(errorOf(reply!));
      },
      fail: () => this.#end(undefined),
    });
    if (!sent) {
      this.#end(undefined);
      return Promise.resolve();
    }
    this.state = "unsubscribing";
    this.#unsubscribing = unsubscribing;
    return unsubscribing.promise;
  }

  /** Sends the subscribe on a connected client, unless it is already on this connection. */
  connected(): void {
    if (this.state !== "subscribing" || this.#asked || this.#retry !== undefined) return;
    const frame: JsonObject = {
      ...this.extra,
      event: ClientEvent.subscribe,
      subscription: this.name,
      ...recoverField(this.position, this.#options.recover !== false),
    };
    this.#asked = this.#owner.send([frame], {
      event: ClientEvent.subscribe,
      count: 1,
      answer: (reply) => this.#replied(reply!),
      fail: () => {},
    });
  }

  /** The connection is gone: subscribe again on the next one. */
  disconnected(): void {
    this.#asked = this.#live = false;
    this.client = undefined;
    this.#owner.clock.clearTimeout(this.#retry);
    this.#retry = undefined;
    if (this.state === "subscribed") this.state = "subscribing";
  }

  /** A frame Shark pushed to this subscription. */
  pushed(frame: JsonObject): void {
    if (frame.event === ClientEvent.unsubscribe) {
      return this.#end(errorOf(frame), this.#options.onUnsubscribed);
    }
    if (this.state !== "subscribed" && this.state !== "unsubscribing") return;
    const { onJoin, onLeave } = this.#options;
    if (frame.event === ServerEvent.join || frame.event === ServerEvent.leave) {
      return this.#call(
        frame.event === ServerEvent.join ? onJoin : onLeave,
        frame.member as unknown as Member,
      );
    }
    this.position = advance(this.position, frame);
    this.#call(this.#options.onMessage, frame as MessageFrame);
  }

  /** Ends it: nothing more is sent or delivered. */
  end(error: SharkError): void {
    this.#end(error);
  }

  #replied(reply: JsonObject): void {
    this.#asked = false;
    if (reply.status !== "ok") {
      if (this.state !== "subscribing") return;
      const error = errorOf(reply);
      if (this.#subscribed && reply.error === ErrorText.serviceUnavailable) {
        this.#error(error);
        this.#retry = this.#owner.clock.setTimeout(() => {
          this.#retry = undefined;
          this.connected();
        }, this.#owner.delay(this.#retries++));
        return;
      }
      return this.#end(error, this.#subscribed ? this.#options.onUnsubscribed : undefined);
    }
    if (this.state === "ended") return;
    const resubscribed = this.#subscribed;
    this.#subscribed = this.#live = true;
    this.#retries = 0;
    if (this.state === "subscribing") this.state = "subscribed";
    this.position = advance(this.position, reply);
    this.client = reply.client as string | undefined;
    this.#settle.resolve(reply as SubscribeReply);
    this.#call(this.#options.onSubscribed, reply as SubscribeReply, resubscribed);
    for (const item of this.#unsent.splice(0)) this.#post(item);
  }

  /** A message and the ping whose pong tells when and how it was handled. */
  #message(data: JsonValue): JsonObject[] {
    return [
      { event: ClientEvent.message, subscription: this.name, data },
      { event: ClientEvent.ping, data: null },
    ];
  }

  #post(item: Outgoing): void {
    if (this.state === "ended" || this.state === "unsubscribing") {
      return item.fail(new SharkError("not subscribed"));
    }
    const { frames } = item;
    const sent = this.state === "subscribed" && this.#owner.send(frames, {
      event: frames[0].event as string,
      count: frames.length,
      answer: (reply) => reply?.status === "error" ? item.fail(errorOf(reply)) : item.answer(reply),
      fail: item.fail,
    });
    if (!sent) this.#unsent.push(item);
  }

  #end(error: SharkError | undefined, notify?: (error: SharkError) => void): void {
    if (this.state === "ended") return;
    this.state = "ended";
    this.client = undefined;
    this.#owner.clock.clearTimeout(this.#retry);
    this.#owner.forget(this);
    const reason = error ?? new SharkError("unsubscribed");
    this.#settle.reject(reason);
    this.#unsubscribing?.resolve();
    for (const item of this.#unsent.splice(0)) item.fail(reason);
    if (notify) this.#call(notify, reason);
  }

  #error(error: SharkError): void {
    if (this.#options.onError) this.#call(this.#options.onError, error);
    else this.#owner.report(error);
  }

  #call<A extends unknown[]>(callback: ((...args: A) => void) | undefined, ...args: A): void {
    try {
      callback?.(...args);
    } catch (error) {
      this.#owner.report(asError(error));
    }
  }
}
