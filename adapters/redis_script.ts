/**
 * A Lua script that ships next to the Redis adapter (`redis_history.lua`,
 * `redis_presence.lua`), read once per process and run by its SHA-1.
 *
 * Why Lua scripts and not Redis functions: `EVALSHA`/`EVAL` work on every
 * Redis from 5.0, where SocketShark users run today, while `FUNCTION LOAD`
 * needs Redis 7; and a script needs no state on the server: a client whose
 * `EVALSHA` finds the script cache empty (a fresh or restarted Redis) sends
 * the text with `EVAL` and goes on, where a function would have to be loaded
 * again before any caller could use it.
 *
 * @module
 */

/** Sends one command to Redis and resolves with its reply. */
export type RedisCommand = (args: readonly string[]) => Promise<unknown>;

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * One shipped Lua script.
 *
 * @example
 * ```ts
 * import { createClient } from "@redis/client";
 * import { RedisScript } from "./redis_script.ts";
 *
 * const client = await createClient({ url: "redis://127.0.0.1:6379/0" }).connect();
 * const send = (args: readonly string[]) => client.sendCommand([...args]);
 * const script = new RedisScript(new URL("./redis_presence.lua", import.meta.url));
 * await script.prepare(send);
 * ```
 */
export class RedisScript {
  /** Where the script is read from. */
  readonly url: URL;
  /** The file name, for errors. */
  readonly name: string;
  #loaded: Promise<{ text: string; sha: string }> | undefined;

  constructor(url: URL) {
    this.url = url;
    this.name = url.pathname.slice(url.pathname.lastIndexOf("/") + 1);
  }

  /** The script's text and SHA-1 (read on first use; a failed read is tried again next time). */
  source(): Promise<{ text: string; sha: string }> {
    this.#loaded ??= (async () => {
      const response = await fetch(this.url);
      if (!response.ok) throw new Error(`cannot read ${this.url}: ${response.status}`);
      const text = await response.text();
      const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(text));
      const sha = [...new Uint8Array(digest)].map((byte) => byte.toString(16).padStart(2, "0"))
        .join("");
      return { text, sha };
    })().catch((error) => {
      this.#loaded = undefined;
      throw error;
    });
    return this.#loaded;
  }

  /** Loads the script into the server's script cache (`SCRIPT LOAD`), which also compiles it. */
  async prepare(send: RedisCommand): Promise<void> {
    const { text, sha } = await this.source();
    let loaded: unknown;
    try {
      loaded = await send(["SCRIPT", "LOAD", text]);
    } catch (error) {
      throw new Error(`cannot load ${this.name}: ${errorText(error)}`);
    }
    if (loaded !== sha) throw this.unexpected(loaded);
  }

  /** EVALSHA, and EVAL when the server's script cache does not have it (yet, or any more). */
  async run(
    send: RedisCommand,
    keys: readonly string[],
    args: readonly string[],
  ): Promise<unknown> {
    const { text, sha } = await this.source();
    const rest = [String(keys.length), ...keys, ...args];
    try {
      return await send(["EVALSHA", sha, ...rest]);
    } catch (error) {
      if (!errorText(error).startsWith("NOSCRIPT")) throw error;
    }
    return await send(["EVAL", text, ...rest]);
  }

  /** A reply that is not what the script returns: a Redis or script bug, never input. */
  unexpected(reply: unknown): Error {
    return new Error(`unexpected reply from ${this.name}: ${JSON.stringify(reply)}`);
  }
}
