/**
 * The Redis adapter's topic history (SPEC section 10): every operation is one
 * run of `redis_history.lua`, an atomic step on the Redis server, so that
 * every Shark node, and any service that runs the same script from its own
 * Redis client, shares one sequence of positions per topic.
 *
 * Why a Lua script and not a Redis function: `EVALSHA`/`EVAL` work on every
 * Redis from 5.0 (the first with streams), where SocketShark users run
 * today, while `FUNCTION LOAD` needs Redis 7; and a script needs no state on
 * the server: a client whose `EVALSHA` finds the script cache empty (a fresh
 * or restarted Redis) sends the text with `EVAL` and goes on, where a
 * function would have to be loaded again before any publisher could call it.
 *
 * Keys, for the channel `<channel_prefix><subscription>`:
 * `{CHANNEL}:history` (a stream capped at `size`, one entry per offset) and
 * `{CHANNEL}:meta` (a hash of `epoch` and `offset`); the braces make the
 * channel their hash tag, so both keys of a topic live in one Redis Cluster
 * slot.
 *
 * @module
 */
import type { History, HistoryOptions, Position, Recovery } from "../src/pubsub/history.ts";

/** Sends one command to Redis and resolves with its reply. */
export type RedisCommand = (args: readonly string[]) => Promise<unknown>;

/** Where the script ships, next to this module. */
export const HISTORY_SCRIPT_URL: URL = new URL("./redis_history.lua", import.meta.url);

/** The text of `redis_history.lua` and its SHA-1, as `EVALSHA` names it. */
export interface HistoryScript {
  readonly text: string;
  readonly sha: string;
}

let script: Promise<HistoryScript> | undefined;

/** `redis_history.lua`, read once per process. */
export function historyScript(): Promise<HistoryScript> {
  script ??= (async () => {
    const response = await fetch(HISTORY_SCRIPT_URL);
    if (!response.ok) throw new Error(`cannot read ${HISTORY_SCRIPT_URL}: ${response.status}`);
    const text = await response.text();
    const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(text));
    const sha = [...new Uint8Array(digest)].map((byte) => byte.toString(16).padStart(2, "0"))
      .join("");
    return { text, sha };
  })().catch((error) => {
    script = undefined;
    throw error;
  });
  return script;
}

/**
 * The two keys of a channel's history, `{CHANNEL}:history` and
 * `{CHANNEL}:meta`, as the script expects them.
 *
 * @example
 * ```ts
 * historyKeys("shark:books.b1"); // ["{shark:books.b1}:history", "{shark:books.b1}:meta"]
 * ```
 */
export function historyKeys(channel: string): [string, string] {
  return [`{${channel}}:history`, `{${channel}}:meta`];
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A script reply that is not what the script returns: a Redis or script bug, never input. */
function unexpected(reply: unknown): Error {
  return new Error(`unexpected reply from redis_history.lua: ${JSON.stringify(reply)}`);
}

function positionFrom(reply: unknown): Position {
  if (!Array.isArray(reply) || typeof reply[0] !== "number" || typeof reply[1] !== "string") {
    throw unexpected(reply);
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

  /**
   * @param send runs one command on a connection that is not in subscribe mode.
   * @param prefix the channel prefix (`pubsub.channel_prefix`).
   */
  constructor(send: RedisCommand, prefix: string) {
    this.#send = send;
    this.#prefix = prefix;
  }

  /** Loads the script into the server's script cache (`SCRIPT LOAD`), which also compiles it. */
  async prepare(): Promise<void> {
    const { text, sha } = await historyScript();
    let loaded: unknown;
    try {
      loaded = await this.#send(["SCRIPT", "LOAD", text]);
    } catch (error) {
      throw new Error(`cannot load redis_history.lua: ${errorText(error)}`);
    }
    if (loaded !== sha) throw unexpected(loaded);
  }

  async publish(topic: string, payload: string, options: HistoryOptions): Promise<Position> {
    return positionFrom(await this.#run(topic, "publish", options, [payload]));
  }

  async position(topic: string, options: HistoryOptions): Promise<Position> {
    return positionFrom(await this.#run(topic, "position", options, []));
  }

  async recover(topic: string, from: Position, options: HistoryOptions): Promise<Recovery> {
    const reply = await this.#run(topic, "recover", options, [String(from.offset), from.epoch]);
    const position = positionFrom(reply);
    const payloads = (reply as unknown[]).slice(3);
    if (payloads.some((payload) => typeof payload !== "string")) throw unexpected(reply);
    return { position, payloads: (reply as unknown[])[2] === 1 ? payloads as string[] : undefined };
  }

  /** EVALSHA, and EVAL when the server's script cache does not have it (yet, or any more). */
  async #run(
    topic: string,
    operation: string,
    options: HistoryOptions,
    more: readonly string[],
  ): Promise<unknown> {
    const channel = this.#prefix + topic;
    const args = [
      "2",
      ...historyKeys(channel),
      operation,
      channel,
      String(options.size),
      String(options.ttl),
      ...more,
    ];
    const { text, sha } = await historyScript();
    try {
      return await this.#send(["EVALSHA", sha, ...args]);
    } catch (error) {
      if (!errorText(error).startsWith("NOSCRIPT")) throw error;
    }
    return await this.#send(["EVAL", text, ...args]);
  }
}
