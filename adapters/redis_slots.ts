/**
 * The slot map of a Redis Cluster (SPEC section 14): which primary serves
 * each of the 16384 slots, read with `CLUSTER SLOTS` from any node, and the
 * URL of each primary, made from a seed URL (its scheme, credentials and
 * options) with the primary's host and port.
 *
 * @module
 */
import { errorText, newClient, withTimeout } from "./redis_client.ts";
import type { Clock } from "../src/clock.ts";
import { redactUrl } from "../src/config/redact.ts";

/** Redis Cluster's slot count. */
export const SLOT_COUNT = 16384;

/** Which primary serves each slot. */
export interface SlotMap {
  /** The URL of the primary serving each slot (`undefined`: no one serves it). */
  readonly owners: readonly (string | undefined)[];
  /** The URLs of every primary that serves a slot. */
  readonly primaries: readonly string[];
}

/** `seed` with `host` and `port` in place of its own. */
export function nodeUrl(seed: string, host: string, port: number): string {
  const url = new URL(seed);
  url.hostname = host.includes(":") ? `[${host}]` : host;
  url.port = String(port);
  url.pathname = "/0";
  return url.href;
}

/** A `CLUSTER SLOTS` reply (RESP2) as a {@link SlotMap}, URLs made from `seed`. */
export function parseClusterSlots(reply: unknown, seed: string): SlotMap {
  if (!Array.isArray(reply)) throw new Error(`unexpected CLUSTER SLOTS reply: ${String(reply)}`);
  const owners = new Array<string | undefined>(SLOT_COUNT).fill(undefined);
  const primaries = new Set<string>();
  for (const range of reply) {
    const [from, to, primary] = range as [number, number, [string, number]];
    const host = primary[0] === "" ? new URL(seed).hostname : primary[0];
    const url = nodeUrl(seed, host, Number(primary[1]));
    primaries.add(url);
    owners.fill(url, Number(from), Number(to) + 1);
  }
  return { owners, primaries: [...primaries] };
}

/**
 * Reads the slot map from the first of `seeds` that answers within
 * `timeoutMs`; rejects naming every seed and why it failed when none does.
 */
export async function readSlotMap(
  seeds: readonly string[],
  timeoutMs: number,
  clock: Clock,
): Promise<SlotMap> {
  const failures: string[] = [];
  for (const seed of seeds) {
    const client = newClient(seed);
    client.on("error", () => {});
    try {
      const reply = await withTimeout(
        client.connect().then(() => client.sendCommand(["CLUSTER", "SLOTS"])),
        timeoutMs,
        `no answer within ${timeoutMs / 1000} s`,
        clock,
      );
      return parseClusterSlots(reply, seed);
    } catch (error) {
      failures.push(`${redactUrl(seed)}: ${errorText(error)}`);
    } finally {
      try {
        client.destroy();
      } catch {
        // never connected
      }
    }
  }
  throw new Error(`no seed of pubsub.redis.cluster answers (${failures.join("; ")})`);
}
