/**
 * One socket to Shark and the events sent on it. Shark answers a
 * connection's events one at a time and in order (docs/protocol.md, "Client
 * events"), so every reply is matched to its request by position; at most
 * `maxPendingEvents` frames are in flight, more wait here. The socket's
 * timers (open, ping, pong, refresh) are named, one of each, on the
 * client's clock.
 *
 * @module
 */
import { ClientEvent, ServerEvent } from "../src/protocol.ts";
import { type Clock, MAX_TIMER } from "./clock.ts";
import type { SharkError } from "./errors.ts";
import type { JsonObject } from "./types.ts";

/** The close code of a connection the client itself gave up on. */
export const GAVE_UP = 4000;

/** An event sent and not answered yet. */
export interface Pending {
  readonly event: string;
  /** Frames it is made of (a message and its ping count two). */
  readonly count: number;
  /** A message's reply, held until its ping's pong completes it. */
  reply?: JsonObject;
  answer(reply: JsonObject | undefined): void;
  fail(error: SharkError): void;
}

/** The timers of a connection, by name. */
export type TimerName = "open" | "ping" | "pong" | "refresh";

/** One socket and the events sent on it, answered in order. */
export class Connection {
  readonly socket: WebSocket;
  readonly closed: Promise<void>;
  readonly clock: Clock;
  connectedAt = 0;
  lastFrameAt = 0;
  readonly #timers = new Map<TimerName, unknown>();
  readonly #pending: Pending[] = [];
  readonly #waiting: { frames: JsonObject[]; entry: Pending }[] = [];
  readonly #max: number;
  #inFlight = 0;

  constructor(socket: WebSocket, max: number, clock: Clock) {
    this.socket = socket;
    this.clock = clock;
    this.#max = Math.max(2, max);
    this.closed = new Promise((resolve) => socket.addEventListener("close", () => resolve()));
  }

  send(frames: JsonObject[], entry: Pending): void {
    if (this.#waiting.length > 0 || this.#inFlight + entry.count > this.#max) {
      this.#waiting.push({ frames, entry });
    } else this.#transmit(frames, entry);
  }

  #transmit(frames: JsonObject[], entry: Pending): void {
    this.#inFlight += entry.count;
    this.#pending.push(entry);
    for (const frame of frames) this.socket.send(JSON.stringify(frame));
  }

  /** Routes a reply or pong to the event it answers; false when it answers none. */
  answer(frame: JsonObject): boolean {
    const head = this.#pending[0];
    if (!head) return false;
    const pong = frame.event === ServerEvent.pong;
    if (!pong && frame.event === ClientEvent.message) {
      if (head.event !== ClientEvent.message || head.reply) return false;
      head.reply = frame;
      return true;
    }
    const expected = head.event === ClientEvent.message ? ClientEvent.ping : head.event;
    if ((pong ? ClientEvent.ping : frame.event) !== expected) return false;
    this.#pending.shift();
    this.#inFlight -= head.count;
    while (this.#waiting.length > 0 && this.#inFlight + this.#waiting[0].entry.count <= this.#max) {
      const { frames, entry } = this.#waiting.shift()!;
      this.#transmit(frames, entry);
    }
    head.answer(pong ? head.reply : frame);
    return true;
  }

  /** Runs `task` after `ms` (at most {@link MAX_TIMER}), replacing the timer of the same name. */
  after(name: TimerName, ms: number, task: () => void): void {
    this.clock.clearTimeout(this.#timers.get(name));
    this.#timers.set(name, this.clock.setTimeout(task, Math.min(ms, MAX_TIMER)));
  }

  cancel(name: TimerName): void {
    this.clock.clearTimeout(this.#timers.get(name));
  }

  /** Stops timers and fails every unanswered event. */
  dispose(error: SharkError): void {
    for (const timer of this.#timers.values()) this.clock.clearTimeout(timer);
    const entries = [...this.#pending, ...this.#waiting.map(({ entry }) => entry)];
    this.#pending.length = this.#waiting.length = 0;
    for (const entry of entries) entry.fail(error);
  }
}
