/**
 * Redis Cluster placement of a topic's keys (SPEC section 14): the slot of a
 * name as Redis computes it, and `slotKey` putting every key of a channel in
 * the channel's slot, for channels with a hash tag, without one, and with
 * the braces that defeat a naive hash tag (`{}`, a `}` without a tag).
 * Checked against `CLUSTER KEYSLOT` of a real cluster-enabled
 * `redis-server` (skipped, with a loud warning, when it is not installed).
 */
import assert from "node:assert/strict";
import { FILLER_LETTERS, hashTag, keySlot, slotKey } from "../adapters/redis_keys.ts";
import { redisAvailable, RedisServer } from "./helpers/redis_server.ts";
import { tempDir } from "./helpers/temp.ts";

/** Channels whose braces matter: every way a hash tag is there or is not. */
const TRICKY_CHANNELS = [
  "shark:chat.room",
  "chat.room",
  "shark:chat.{room}",
  "{shark}:chat.room",
  "shark:chat.{}",
  "shark:chat.{}{room}",
  "shark:chat.a}b",
  "shark:chat.}{room}",
  "shark:chat.}{",
  "shark:chat.{room",
  "shark:chat.{}room}",
  "shark:chat.ünï{cödé}",
  "shark:chat.ünï}cödé",
];

Deno.test("hashTag is what stands between the first `{` and the next `}`, when not empty", () => {
  assert.equal(hashTag("shark:chat.{room}"), "room");
  assert.equal(hashTag("{shark}:chat.{room}"), "shark");
  assert.equal(hashTag("a}b{c}d"), "c");
  assert.equal(hashTag("{a{b}c}"), "a{b");
  assert.equal(hashTag("shark:chat.room"), undefined);
  assert.equal(hashTag("shark:chat.{}{room}"), undefined);
  assert.equal(hashTag("shark:chat.{room"), undefined);
  assert.equal(hashTag("shark:chat.a}b"), undefined);
});

Deno.test("keySlot is CRC16-XMODEM of the hashed part, modulo 16384", () => {
  assert.equal(keySlot("123456789"), 0x31c3 & 0x3fff);
  assert.equal(keySlot("x{123456789}y"), keySlot("123456789"));
  assert.notEqual(keySlot("{}123456789"), keySlot("123456789"));
});

Deno.test("slotKey embeds a channel with a hash tag as it is, and makes a channel without one (and without `}`) the key's hash tag", () => {
  assert.equal(slotKey("shark:chat.{room}", ":presence"), "shark:chat.{room}:presence");
  assert.equal(slotKey("{shark}:chat.room", ":presence"), "{shark}:chat.room:presence");
  assert.equal(slotKey("shark:chat.room", ":presence"), "{shark:chat.room}:presence");
  assert.equal(slotKey("shark:chat.{room", ":presence"), "{shark:chat.{room}:presence");
});

Deno.test("slotKey gives a channel that no hash tag can hold (`{}` first, or a `}` without a tag) four filler letters that make the whole key hash to the channel's slot", () => {
  for (const channel of ["shark:chat.{}", "shark:chat.{}{room}", "shark:chat.a}b", "x}"]) {
    const key = slotKey(channel, ":presence");
    assert.ok(key.startsWith(`${channel}:presence:`), key);
    assert.match(key.slice(channel.length), /^:presence:[@A-O]{4}$/);
    assert.equal(hashTag(key), undefined, key);
    assert.equal(keySlot(key), keySlot(channel), key);
  }
});

Deno.test("four filler letters reach every one of the 16384 slots, so the filler search never fails", () => {
  // CRC16 is linear: from any start, the slots four letters reach are those
  // from start 0 shifted by one constant, so covering them from 0 covers them from any start.
  const slots = new Set<number>();
  for (const a of FILLER_LETTERS) {
    for (const b of FILLER_LETTERS) {
      for (const c of FILLER_LETTERS) {
        for (const d of FILLER_LETTERS) slots.add(keySlot(`}${a}${b}${c}${d}`) ^ keySlot("}@@@@"));
      }
    }
  }
  assert.equal(slots.size, 16384);
});

Deno.test("every key slotKey makes for a random channel is in the channel's slot", () => {
  const alphabet = "ab{}:.é";
  for (let n = 0; n < 2000; n++) {
    const length = 1 + Math.floor(Math.random() * 10);
    const channel = Array.from(
      { length },
      () => alphabet[Math.floor(Math.random() * alphabet.length)],
    ).join("");
    for (const suffix of [":presence", ":presence:nodes", ":history"]) {
      assert.equal(keySlot(slotKey(channel, suffix)), keySlot(channel), `${channel} ${suffix}`);
    }
  }
});

const clusterTest = await redisAvailable() ? Deno.test : Deno.test.ignore;

clusterTest(
  "keySlot and the slots of slotKey's keys agree with CLUSTER KEYSLOT of a real Redis",
  async () => {
    await using dir = await tempDir("shark-cluster-");
    await using redis = await RedisServer.start({
      args: ["--cluster-enabled", "yes", "--cluster-config-file", `${dir.path}/nodes.conf`],
    });
    const slotOf = async (name: string) => {
      const result = await redis.cli("CLUSTER", "KEYSLOT", name);
      assert.equal(result.code, 0, result.stderr);
      return Number(result.stdout);
    };
    for (const channel of TRICKY_CHANNELS) {
      const slot = await slotOf(channel);
      assert.equal(keySlot(channel), slot, channel);
      for (const suffix of [":presence", ":presence:nodes", ":presence:owners"]) {
        assert.equal(await slotOf(slotKey(channel, suffix)), slot, `${channel} ${suffix}`);
      }
    }
  },
);
