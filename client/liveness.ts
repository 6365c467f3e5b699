/**
 * Whether an open connection is alive: a `ping` every interval, and a
 * connection that received nothing within the timeout after one is taken as
 * dead. Shark answers a ping after the events sent before it, so the timeout
 * must outlast the slowest service callback. The timers run on the
 * connection's clock.
 *
 * @module
 */
import { ClientEvent } from "../src/protocol.ts";
import type { Connection } from "./connection.ts";

/** How often to ping, how long to wait, and whom to tell. */
export interface LivenessOptions {
  /** ms between pings; 0 or less: no pings. */
  readonly interval: number;
  /** ms without any frame after a ping before the connection is dead. */
  readonly timeout: number;
  /** A pong arrived, `rtt` ms after its ping. */
  onPong(rtt: number): void;
  /** Nothing arrived in time; `reason` says so. */
  onDead(reason: string): void;
}

/** Pings on `connection` until its timers are disposed of. */
export function watchLiveness(connection: Connection, options: LivenessOptions): void {
  const { interval, timeout } = options;
  if (interval <= 0) return;
  const clock = connection.clock;
  let waiting = false;
  let watching = false;
  const tick = () => {
    connection.after("ping", interval, tick);
    if (!waiting) {
      waiting = true;
      const sentAt = clock.now();
      connection.send([{ event: ClientEvent.ping, data: null }], {
        event: ClientEvent.ping,
        count: 1,
        answer: () => {
          waiting = false;
          options.onPong(clock.now() - sentAt);
        },
        fail: () => {},
      });
    }
    if (watching) return;
    watching = true;
    const since = clock.now();
    connection.after("pong", timeout, () => {
      watching = false;
      if (connection.lastFrameAt < since) options.onDead(`no pong within ${timeout} ms`);
    });
  };
  connection.after("ping", interval, tick);
}
