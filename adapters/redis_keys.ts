/**
 * Where the keys Shark writes for a topic land in Redis Cluster (SPEC
 * section 14): each hashes to the slot of the topic's channel
 * `<channel_prefix><SERVICE.TOPIC>`, so that one script touches keys of one
 * slot only and may publish on the channel's own shard.
 *
 * Redis hashes the part of a name between its first `{` and the next `}`
 * when that part is not empty, and the whole name otherwise. A key gets the
 * channel's slot by sharing what the channel hashes: a channel with a hash
 * tag is embedded as it is (`<channel>:presence`), a channel without one is
 * made the key's hash tag (`{<channel>}:presence`). Neither works for a
 * channel that has no hash tag but contains a `}` (`chat.a}b`, `chat.{}`): a
 * hash tag ends at its first `}`, so no tag can hold that channel. Such a
 * key gets four more letters chosen so that the whole key hashes to the
 * channel's slot (CRC16 is linear, and four letters of
 * {@link FILLER_LETTERS} reach every slot from any start).
 *
 * @module
 */

/** The letters of a filler: their low four bits vary, so they reach every slot. */
export const FILLER_LETTERS = "@ABCDEFGHIJKLMNO";
/** Redis Cluster has 16384 slots: a slot is the low 14 bits of the CRC16. */
const SLOT_MASK = 0x3fff;

/** CRC16-CCITT (XMODEM), the one Redis Cluster uses, a table per byte value. */
const CRC_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = (crc << 1) ^ (crc & 0x8000 ? 0x1021 : 0);
    table[byte] = crc & 0xffff;
  }
  return table;
})();

function crcStep(crc: number, byte: number): number {
  return ((crc << 8) & 0xffff) ^ CRC_TABLE[(crc >> 8) ^ byte];
}

function crc16(bytes: Uint8Array): number {
  return bytes.reduce(crcStep, 0);
}

const encoder = new TextEncoder();

/**
 * The part of `name` that Redis Cluster hashes when it is not the whole
 * name: what stands between the first `{` and the next `}`, if not empty.
 *
 * @example
 * ```ts
 * hashTag("shark:{room}.1"); // "room"
 * hashTag("shark:chat.{}{room}"); // undefined: the first `{` is followed by `}`
 * ```
 */
export function hashTag(name: string): string | undefined {
  const open = name.indexOf("{");
  if (open < 0) return undefined;
  const close = name.indexOf("}", open + 1);
  return close > open + 1 ? name.slice(open + 1, close) : undefined;
}

/**
 * The Redis Cluster slot of a key or channel name, as `CLUSTER KEYSLOT`
 * answers it.
 *
 * @example
 * ```ts
 * keySlot("123456789"); // 12739
 * ```
 */
export function keySlot(name: string): number {
  return crc16(encoder.encode(hashTag(name) ?? name)) & SLOT_MASK;
}

/**
 * The key `suffix` of the channel `channel`, in the channel's slot.
 *
 * @param suffix what names the key's role (`:presence`); without `{` or `}`.
 *
 * @example
 * ```ts
 * slotKey("shark:chat.room", ":presence"); // "{shark:chat.room}:presence"
 * slotKey("shark:chat.{room}", ":presence"); // "shark:chat.{room}:presence"
 * ```
 */
export function slotKey(channel: string, suffix: string): string {
  if (hashTag(channel) !== undefined) return channel + suffix;
  if (!channel.includes("}")) return `{${channel}}${suffix}`;
  // No `{` after the channel's own: the filled key has no hash tag either.
  const key = `${channel}${suffix}:`;
  const target = keySlot(channel);
  const start = crc16(encoder.encode(key));
  const letters = [...FILLER_LETTERS].map((letter) => letter.charCodeAt(0));
  for (let choice = 0; choice < 0x10000; choice++) {
    let crc = start;
    for (let shift = 12; shift >= 0; shift -= 4) {
      crc = crcStep(crc, letters[(choice >> shift) & 15]);
    }
    if ((crc & SLOT_MASK) === target) {
      return key + [12, 8, 4, 0].map((shift) => FILLER_LETTERS[(choice >> shift) & 15]).join("");
    }
  }
  // Unreachable: four filler letters reach every slot (tests/redis_keys_test.ts shows it).
  throw new Error(`no key of slot ${target} for channel ${JSON.stringify(channel)}`);
}
