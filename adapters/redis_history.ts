/**
 * The Redis adapter's topic history (SPEC section 10): every operation is one
 * run of `redis_history.lua`, an atomic step on the Redis server, so that
 * every Shark node, and any service that runs the same script from its own
 * Redis client, shares one sequence of positions per topic.
 *
 * The script is run as `redis_script.ts` runs every shipped script.
 *
 * Keys, for the channel `<channel_prefix><subscription>`:
 * `{CHANNEL}:history` (a stream capped at `size`, one entry per offset) and
 * `{CHANNEL}:meta` (a hash of `epoch` and `offset`); the braces make the
 * channel their hash tag, so both keys of a topic live in the channel's
 * Redis Cluster slot (SPEC section 14). A channel with a hash tag of its own
 * keeps it (`CHANNEL:history`), as `slotKey` of `redis_keys.ts` says.
 *
 * @module
 */
import type { History, HistoryOptions, Position, Recovery } from "../src/pubsub/history.ts";
import { type RedisCommand, RedisScript } from "./redis_script.ts";
import { slotKey } from "./redis_keys.ts";

export type { RedisCommand } from "./redis_script.ts";

/** `redis_history.lua`, shipped next to this module. */
const SCRIPT = new RedisScript(new URL("./redis_history.lua", import.meta.url));

/**
 * The two keys of a channel's history, in the channel's slot:
 * `{CHANNEL}:history` and `{CHANNEL}:meta` (`CHANNEL:history` and
 * `CHANNEL:meta` for a channel with a hash tag), as the script expects them.
 *
 * @example
 * ```ts
 * historyKeys("shark:books.b1"); // ["{shark:books.b1}:history", "{shark:books.b1}:meta"]
 * ```
 */
export function historyKeys(channel: string): [string, string] {
  return [slotKey(channel, ":history"), slotKey(channel, ":meta")];
}

function positionFrom(reply: unknown): Position {
  if (!Array.isArray(reply) || typeof reply[0] !== "number" || typeof reply[1] !== "string") {
    throw SCRIPT.unexpected(reply);
  }
  return { offset: reply[0], epoch: reply[1] };
}

/**
 * Topic history kept in Redis by `redis_history.lua`.
 *
 * @example
 * ```ts
 * import { createClient } from "@redis/client";
 * import { RedisHistory } from "./redis_history.ts";
 *
 * const client = await createClient({ url: "redis://127.0.0.1:6379/0" }).connect();
 * const history = new RedisHistory((args) => client.sendCommand([...args]), "shark:");
 * await history.prepare();
 * const position = await history.publish(
 *   "books.b1",
 *   '{"subscription":"books.b1","data":{}}',
 *   { size: 100, ttl: 300 },
 * );
 * ```
 */
export class RedisHistory implements History {
  readonly #send: RedisCommand;
  readonly #prefix: string;
  readonly #sharded: boolean;

  /**
   * @param send runs one command on a connection that is not in subscribe mode.
   * @param prefix the channel prefix (`pubsub.channel_prefix`).
   * @param options `sharded`: envelopes go out by SPUBLISH (SPEC section 14).
   */
  constructor(send: RedisCommand, prefix: string, options: { readonly sharded?: boolean } = {}) {
    this.#send = send;
    this.#prefix = prefix;
    this.#sharded = options.sharded ?? false;
  }

  /** Loads the script into the server's script cache (`SCRIPT LOAD`), which also compiles it. */
  prepare(): Promise<void> {
    return SCRIPT.prepare(this.#send);
  }

  async publish(topic: string, payload: string, options: HistoryOptions): Promise<Position> {
    const more = this.#sharded ? [payload, "SPUBLISH"] : [payload];
    return positionFrom(await this.#run(topic, "publish", options, more));
  }

  async position(topic: string, options: HistoryOptions): Promise<Position> {
    return positionFrom(await this.#run(topic, "position", options, []));
  }

  async recover(topic: string, from: Position, options: HistoryOptions): Promise<Recovery> {
    const reply = await this.#run(topic, "recover", options, [String(from.offset), from.epoch]);
    const position = positionFrom(reply);
    const payloads = (reply as unknown[]).slice(3);
    if (payloads.some((payload) => typeof payload !== "string")) throw SCRIPT.unexpected(reply);
    return { position, payloads: (reply as unknown[])[2] === 1 ? payloads as string[] : undefined };
  }

  #run(
    topic: string,
    operation: string,
    options: HistoryOptions,
    more: readonly string[],
  ): Promise<unknown> {
    const channel = this.#prefix + topic;
    return SCRIPT.run(this.#send, historyKeys(channel), [
      operation,
      channel,
      String(options.size),
      String(options.ttl),
      ...more,
    ]);
  }
}
