/**
 * The Redis adapter's presence store (SPEC section 12): every change is one
 * run of `redis_presence.lua`, an atomic step on the Redis server that also
 * PUBLISHes the join or leave on the topic's channel, so that every node
 * sees a topic's joins, leaves and messages in one order, and a member's
 * leave is published exactly once, whichever node removes it.
 *
 * Each node has an id of its own; a node's deadline (Redis time + `ttl`) is
 * pushed on by its `add` and `refresh` calls. Whichever node reads or
 * refreshes a topic after another node's deadline has passed removes that
 * node's members, each with its leave.
 *
 * Keys, for the channel `<channel_prefix><SERVICE.TOPIC>`, all in the
 * channel's Redis Cluster slot (`redis_keys.ts`): `…:presence` (a hash of
 * client id to member JSON), `…:presence:nodes` (a sorted set of node id to
 * deadline) and `…:presence:owners` (`NODE:CLIENT` per member, so that a
 * node's members are one range). They expire 2 × `ttl` after the last add
 * or refresh: a topic nobody keeps vanishes.
 *
 * @module
 */
import { isObject } from "../src/json.ts";
import { memberJson } from "../src/presence/presence_payload.ts";
import type { Member, PresenceOptions, PresenceStore, Refreshed } from "../src/presence/store.ts";
import { slotKey } from "./redis_keys.ts";
import { type RedisCommand, RedisScript } from "./redis_script.ts";

/** `redis_presence.lua`, shipped next to this module. */
const SCRIPT = new RedisScript(new URL("./redis_presence.lua", import.meta.url));

/**
 * The three keys of a channel's presence, as the script expects them.
 *
 * @example
 * ```ts
 * presenceKeys("shark:chat.room");
 * // ["{shark:chat.room}:presence", "{shark:chat.room}:presence:nodes",
 * //  "{shark:chat.room}:presence:owners"]
 * ```
 */
export function presenceKeys(channel: string): [string, string, string] {
  return [
    slotKey(channel, ":presence"),
    slotKey(channel, ":presence:nodes"),
    slotKey(channel, ":presence:owners"),
  ];
}

function memberFrom(text: unknown): Member {
  const parsed = typeof text === "string" ? JSON.parse(text) : undefined;
  const { client, user, info } = isObject(parsed) ? parsed : {};
  if (typeof client !== "string" || typeof user !== "string" || !isObject(info)) {
    throw SCRIPT.unexpected(text);
  }
  return { client, user, info };
}

/**
 * Presence kept in Redis by `redis_presence.lua`, for one node.
 *
 * @example
 * ```ts
 * import { createClient } from "@redis/client";
 * import { RedisPresence } from "./redis_presence.ts";
 *
 * const client = await createClient({ url: "redis://127.0.0.1:6379/0" }).connect();
 * const presence = new RedisPresence((args) => client.sendCommand([...args]), "shark:");
 * await presence.prepare();
 * const options = { ttl: 60, joinLeave: true };
 * await presence.add("chat.room", { client: "c1", user: "u1", info: {} }, options);
 * ```
 */
export class RedisPresence implements PresenceStore {
  /** This node's id: its members are kept alive by its refreshes. */
  get node(): string {
    return this.#node;
  }
  #node: string;
  readonly #send: RedisCommand;
  readonly #prefix: string;
  readonly #sharded: boolean;

  /**
   * @param send runs one command on a connection that is not in subscribe mode.
   * @param prefix the channel prefix (`pubsub.channel_prefix`).
   * @param node this node's id (letters, digits and `-`); a fresh UUID by default.
   * @param options `sharded`: joins and leaves go out by SPUBLISH (SPEC section 14).
   */
  constructor(
    send: RedisCommand,
    prefix: string,
    node: string = crypto.randomUUID(),
    options: { readonly sharded?: boolean } = {},
  ) {
    this.#send = send;
    this.#prefix = prefix;
    this.#node = node;
    this.#sharded = options.sharded ?? false;
  }

  /**
   * Goes on under a fresh node id, leaving the members of the old one to
   * expire as those of a node that was cut off: their leaves are sent by
   * whichever node sweeps them after the old id's deadline. For a lost
   * Redis, after which the engine closed every session while their removes
   * could not reach the store: without a fresh id, the next add or refresh
   * of this node would keep those members alive for good.
   */
  renewNode(): void {
    this.#node = crypto.randomUUID();
  }

  /** Loads the script into the server's script cache (`SCRIPT LOAD`), which also compiles it. */
  prepare(): Promise<void> {
    return SCRIPT.prepare(this.#send);
  }

  async add(topic: string, member: Member, options: PresenceOptions): Promise<void> {
    await this.#run(topic, "add", options, [member.client, memberJson(member)]);
  }

  async remove(topic: string, client: string, options: PresenceOptions): Promise<boolean> {
    const reply = await this.#run(topic, "remove", options, [client]);
    if (reply !== 0 && reply !== 1) throw SCRIPT.unexpected(reply);
    return reply === 1;
  }

  async read(topic: string, options: PresenceOptions): Promise<Member[]> {
    const reply = await this.#run(topic, "read", options, []);
    if (!Array.isArray(reply)) throw SCRIPT.unexpected(reply);
    return reply.map(memberFrom);
  }

  async refresh(topic: string, options: PresenceOptions): Promise<Refreshed> {
    const reply = await this.#run(topic, "refresh", options, []);
    if (
      !Array.isArray(reply) || typeof reply[0] !== "number" || (reply[1] !== 0 && reply[1] !== 1)
    ) {
      throw SCRIPT.unexpected(reply);
    }
    return { expired: reply[0], lapsed: reply[1] === 1 };
  }

  #run(
    topic: string,
    operation: string,
    options: PresenceOptions,
    more: readonly string[],
  ): Promise<unknown> {
    const channel = this.#prefix + topic;
    return SCRIPT.run(this.#send, presenceKeys(channel), [
      operation,
      channel,
      this.#node,
      String(options.ttl),
      options.joinLeave ? (this.#sharded ? "2" : "1") : "0",
      JSON.stringify(topic),
      ...more,
    ]);
  }
}
