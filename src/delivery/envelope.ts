/**
 * Published envelopes (SPEC section 3): validation, delivery options and the
 * frames sent to subscribers. An envelope is parsed once; each distinct
 * outgoing frame is serialized once per fan-out, however many subscribers
 * receive it.
 *
 * @module
 */
import type { Position } from "../pubsub/history.ts";
import { serviceOf } from "./subscription_name.ts";
import { isObject, type JsonObject, parseNumber } from "../json.ts";
import { isoTime, MAX_TIMER_MS } from "../clock.ts";

/** An envelope given to `publish()` or `POST /publish` is not valid. */
export class InvalidEnvelope extends TypeError {
  override readonly name = "InvalidEnvelope";
}

/**
 * Validates an envelope: the JSON text of a payload taken from the pub/sub
 * channel `channel` (whose name its `subscription` must be), or a value given
 * to `publish()`. Returns the envelope, or a string saying why it is not one.
 *
 * @example
 * ```ts
 * parseEnvelope('{"subscription":"books.1","data":{}}', "books.1"); // the envelope
 * parseEnvelope({ subscription: "books", data: {} }); // 'subscription "books" is not "SERVICE.TOPIC"'
 * ```
 */
export function parseEnvelope(payload: string, channel: string): JsonObject | string;
export function parseEnvelope(value: unknown): JsonObject | string;
export function parseEnvelope(input: unknown, channel?: string): JsonObject | string {
  let value = input;
  if (channel !== undefined) {
    try {
      value = JSON.parse(input as string);
    } catch {
      return "not JSON";
    }
  }
  if (!isObject(value)) return "an envelope must be a JSON object";
  const name = value.subscription;
  if (typeof name !== "string") return 'an envelope needs a "subscription" string';
  // A channel Shark subscribed has a valid name: the envelope's equal name needs no second look.
  if (name !== channel && serviceOf(name) === undefined) {
    return `subscription ${JSON.stringify(name.slice(0, 200))} is not "SERVICE.TOPIC"`;
  }
  if (!Object.hasOwn(value, "data")) return 'an envelope needs a "data" field';
  if (value.options !== undefined && !isObject(value.options)) {
    return '"options" must be a JSON object';
  }
  if (channel !== undefined && name !== channel) {
    return "its subscription does not match the channel";
  }
  return value;
}

const TIMESTAMP =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i;

/**
 * Normalizes an ISO-8601 timestamp to UTC with millisecond precision; a value
 * without an offset is taken as UTC. `undefined` for anything unparsable.
 *
 * @example
 * ```ts
 * normalizeTimestamp("2024-05-01T12:00:00.123456+02:00"); // "2024-05-01T10:00:00.123Z"
 * ```
 */
export function normalizeTimestamp(value: unknown): string | undefined {
  if (typeof value !== "string" || value.length > 64) return undefined;
  const match = TIMESTAMP.exec(value.trim());
  if (!match) return undefined;
  const [, year, month, day, hour = "0", minute = "0", second = "0", fraction = "", zone] = match;
  const [y, mo, d, h, mi, sec] = [year, month, day, hour, minute, second].map(Number);
  if (h > 23 || mi > 59 || sec > 59) return undefined;
  const millis = Math.floor(Number(`0.${fraction || "0"}`) * 1000);
  const date = new Date(Date.UTC(y, mo - 1, d, h, mi, sec, millis));
  if (date.getUTCFullYear() !== y || date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d) {
    return undefined;
  }
  let time = date.getTime();
  if (zone && zone.toUpperCase() !== "Z") {
    const digits = zone.slice(1).replace(":", "");
    const offset = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || "0");
    time -= (zone[0] === "-" ? -1 : 1) * offset * 60_000;
  }
  return Number.isFinite(time) ? new Date(time).toISOString() : undefined;
}

/** Turns an `order_key`/`throttle_key` into a Map key; absent keys share one bucket. */
export function bucketOf(key: unknown): unknown {
  if (key === undefined || key === null) return null;
  return typeof key === "object" ? `json:${JSON.stringify(key)}` : key;
}

/**
 * One envelope on its way to the subscribers of its topic, with everything
 * that is the same for all of them computed once.
 */
export class Delivery {
  /** The parsed envelope. */
  readonly envelope: JsonObject;
  /** `options.order` when it parses as a number. */
  readonly order: number | undefined;
  /** The order bucket (`options.order_key`). */
  readonly orderKey: unknown;
  /**
   * `options.throttle` in seconds when it parses as a number, capped at
   * {@link MAX_TIMER_MS}: a longer period would overflow the throttle's timer.
   */
  readonly throttle: number | undefined;
  /** The throttle bucket (`options.throttle_key`). */
  readonly throttleKey: unknown;
  /** The envelope's position in its topic's history, for a service with `history`. */
  readonly position: Position | undefined;
  readonly #metadata: DeliveryMetadata | undefined;
  readonly #metadataJson: string | undefined;
  readonly #frameStart: string;
  #head: string | undefined;
  #frame: string | undefined;
  #frames: Map<string, string> | undefined;
  /** The last late frame: its `extra`, its `sent_at` and the frame. */
  #late: [string, string, string] | undefined;
  #filterFields: readonly string[] | undefined;
  #filters: [string, unknown][] | undefined;

  /**
   * @param frameStart {@link messageFrameStart} of the envelope's topic.
   * @param metadata the delivery metadata for frames sent now, or `undefined`
   *   when `delivery.metadata` is off.
   * @param position the envelope's position, sent next to `data`.
   */
  constructor(
    frameStart: string,
    envelope: JsonObject,
    metadata: DeliveryMetadata | undefined,
    position?: Position,
  ) {
    this.#frameStart = frameStart;
    this.position = position;
    this.envelope = envelope;
    const options = envelope.options as JsonObject | undefined;
    this.order = options ? parseNumber(options.order) : undefined;
    this.orderKey = this.order === undefined ? null : bucketOf(options!.order_key);
    const throttle = options ? parseNumber(options.throttle) : undefined;
    this.throttle = throttle === undefined ? undefined : Math.min(throttle, MAX_TIMER_MS / 1000);
    this.throttleKey = this.throttle === undefined ? null : bucketOf(options!.throttle_key);
    this.#metadata = metadata;
    this.#metadataJson = metadata && metadataJson(metadata, metadata.sentAt);
  }

  /**
   * The filter fields of `fields` present in the envelope, as pairs. Every
   * subscriber of a topic belongs to the same service, so this is computed
   * once per envelope.
   */
  filters(fields: readonly string[]): [string, unknown][] {
    if (this.#filterFields !== fields) {
      this.#filterFields = fields;
      this.#filters = [];
      for (const field of fields) {
        if (Object.hasOwn(this.envelope, field)) this.#filters.push([field, this.envelope[field]]);
      }
    }
    return this.#filters!;
  }

  /**
   * The message frame for a subscription whose extra fields serialize to
   * `extra` (`""` or `,"key":value...`), built once per distinct `extra`.
   */
  frame(extra: string): string {
    if (extra === "") return this.#frame ??= this.#build("", this.#metadataJson);
    this.#frames ??= new Map();
    let frame = this.#frames.get(extra);
    if (frame === undefined) {
      this.#frames.set(extra, frame = this.#build(extra, this.#metadataJson));
    }
    return frame;
  }

  /**
   * A frame for a message sent later than its fan-out (held during subscribe
   * or released by a throttle): `sentAt` (milliseconds since the epoch) is now.
   */
  lateFrame(extra: string, sentAt: number): string {
    const metadata = this.#metadata;
    if (!metadata) return this.frame(extra);
    // The subscriptions a shared history read released get one frame per millisecond.
    const sent = isoTime(sentAt);
    const late = this.#late;
    if (late?.[0] === extra && late[1] === sent) return late[2];
    const frame = this.#build(extra, metadataJson(metadata, sent));
    this.#late = [extra, sent, frame];
    return frame;
  }

  #build(extra: string, metadata: string | undefined): string {
    this.#head ??= this.#frameStart + (JSON.stringify(this.envelope.data) ?? "null") +
      (this.position
        ? `,"offset":${this.position.offset},"epoch":${JSON.stringify(this.position.epoch)}`
        : "");
    return `${this.#head}${extra}${metadata ?? ""}}`;
  }
}

/**
 * The start of every message frame of a topic, up to its `data` value; the
 * hub computes it once per topic.
 */
export function messageFrameStart(topic: string): string {
  return `{"event":"message","subscription":${JSON.stringify(topic)},"data":`;
}

/** The per-envelope delivery metadata of SPEC section 3. */
export interface DeliveryMetadata {
  /** The publisher's `published_at`, normalized, if valid. */
  readonly publishedAt: string | undefined;
  /** When this process took the envelope from pub/sub. */
  readonly receivedAt: string;
  /** Envelopes waiting behind this one in this process. */
  readonly queueSize: number;
  /** When frames built at the fan-out are sent: the `sent_at` of all but late frames. */
  readonly sentAt: string;
}

function metadataJson(metadata: DeliveryMetadata, sentAt: string): string {
  const published = metadata.publishedAt ? `,"published_at":"${metadata.publishedAt}"` : "";
  return `${published},"received_at":"${metadata.receivedAt}","sent_at":"${sentAt}","queue_size":${metadata.queueSize}`;
}
