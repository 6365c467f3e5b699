/**
 * Oversized frames cost only their header (SPEC sections 8 and 9): on
 * Shark's own transport a frame announced over `max_message_bytes` fails the
 * connection at once (1009), reading stops, and the TCP connection is
 * dropped after a short grace, so a crowd of hostile clients costs neither
 * memory nor the other clients their messages.
 *
 * Shark runs as a real process (`main.ts`, its default transport) so that
 * its resident memory can be read from `/proc`.
 */
import assert from "node:assert/strict";
import { closeQuietly, sendUntilDropped } from "./helpers/flood.ts";
import { SharkProcess } from "./helpers/process.ts";
import { rssOfKiB } from "./helpers/proc_memory.ts";
import { tempFile } from "./helpers/temp.ts";
import { within } from "./helpers/wait.ts";
import { upgradeRequest } from "./helpers/ws_frame.ts";

const ATTACKERS = 100;
const ANNOUNCED_BYTES = 50_000_000;
const SECRET = "oversized-test-secret";

/** The header of a masked binary frame announcing `bytes`. */
function announce(bytes: number): Uint8Array {
  const header = new Uint8Array(14);
  header[0] = 0x82;
  header[1] = 0x80 | 127;
  new DataView(header.buffer).setBigUint64(2, BigInt(bytes));
  header.set([1, 2, 3, 4], 10);
  return header;
}

/** What one hostile client saw. */
interface Attack {
  /** The close code it got, `null` when none. */
  readonly code: number | null;
  /** Milliseconds from its header to the close frame. */
  readonly closedAfterMs: number;
  /** Payload bytes it managed to hand to its kernel before the server dropped it. */
  readonly sent: number;
}

/** Upgrades, announces a 50 MB frame, then pushes its payload until the server ends it. */
async function attack(port: number): Promise<Attack> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(upgradeRequest(port, btoa("0123456789abcdef")));
  const head = new Uint8Array(1024);
  await conn.read(head);
  const started = performance.now();
  await conn.write(announce(ANNOUNCED_BYTES));
  let code: number | null = null;
  let closedAfterMs = Infinity;
  const reading = (async () => {
    const buffer = new Uint8Array(256);
    for (;;) {
      const read = await conn.read(buffer).catch(() => null);
      if (read === null) return;
      // The server sends nothing but its close frame: 0x88, length, the code.
      if (buffer[0] === 0x88 && read >= 4 && code === null) {
        code = (buffer[2] << 8) | buffer[3];
        closedAfterMs = performance.now() - started;
      }
    }
  })();
  const sent = await sendUntilDropped(conn, ANNOUNCED_BYTES);
  await reading;
  closeQuietly(conn);
  return { code, closedAfterMs, sent };
}

Deno.test(`${ATTACKERS} clients each announcing a 50 MB frame: all get 1009 within 2 s, Shark's memory barely moves, a bystander keeps receiving`, async () => {
  await using config = await tempFile({
    server: { host: "127.0.0.1", port: 0, max_message_bytes: 65536 },
    services: { feed: { require_authentication: false } },
    publish_api: { secret: SECRET },
  });
  // The CLI's default transport, whatever the suite runs on.
  await using shark = SharkProcess.deno(["run", "-A", "main.ts", "--config", config.path]);
  const port = await shark.listeningPort();
  const pid = shark.child.pid;

  const bystander = new WebSocket(`ws://127.0.0.1:${port}/`);
  const latencies: number[] = [];
  const received: number[] = [];
  const subscribed = Promise.withResolvers<void>();
  bystander.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    if (frame.event === "subscribe") subscribed.resolve();
    if (frame.event !== "message") return;
    received.push(frame.data.n);
    latencies.push(performance.timeOrigin + performance.now() - frame.data.at);
  };
  await new Promise((resolve) => bystander.onopen = resolve);
  bystander.send(JSON.stringify({ event: "subscribe", subscription: "feed.1" }));
  await within(subscribed.promise, 5000, "the bystander subscribed");

  let published = 0;
  let publishing = true;
  const publisher = (async () => {
    while (publishing) {
      const response = await fetch(`http://127.0.0.1:${port}/publish`, {
        method: "POST",
        headers: { authorization: `Bearer ${SECRET}` },
        body: JSON.stringify({
          subscription: "feed.1",
          data: { n: published, at: performance.timeOrigin + performance.now() },
        }),
      });
      assert.equal(response.status, 200, await response.text());
      published++;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();

  // Memory settles once the first publishes are through.
  await new Promise((resolve) => setTimeout(resolve, 300));
  const before = rssOfKiB([pid]);
  let peak = before;
  const sampler = setInterval(() => peak = Math.max(peak, rssOfKiB([pid])), 20);
  const attacks = await Promise.all(Array.from({ length: ATTACKERS }, () => attack(port)));
  clearInterval(sampler);
  peak = Math.max(peak, rssOfKiB([pid]));
  publishing = false;
  await publisher;
  await within(
    (async () => {
      while (received.length < published) await new Promise((r) => setTimeout(r, 10));
    })(),
    5000,
    "the bystander received every message",
  );
  bystander.close();

  const sorted = latencies.toSorted((a, b) => a - b);
  const p99 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))];
  const slowest = Math.max(...attacks.map((one) => one.closedAfterMs));
  console.log(
    `${ATTACKERS} attackers: slowest 1009 after ${Math.round(slowest)} ms; RSS ${
      Math.round(before / 1024)
    } -> peak ${Math.round(peak / 1024)} MiB; most bytes one attacker got into its kernel ${
      Math.max(...attacks.map((one) => one.sent))
    }; bystander: ${received.length} messages, p99 ${p99.toFixed(1)} ms, max ${
      sorted.at(-1)!.toFixed(1)
    } ms`,
  );
  assert.deepEqual(attacks.map((one) => one.code), attacks.map(() => 1009));
  assert.ok(slowest < 2000, `every 1009 within 2 s: the slowest took ${slowest} ms`);
  assert.ok(
    (peak - before) / 1024 < 50,
    `resident memory grew by ${((peak - before) / 1024).toFixed(1)} MiB`,
  );
  for (const one of attacks) {
    assert.ok(one.sent < ANNOUNCED_BYTES, "the server dropped the connection before the payload");
  }
  assert.deepEqual(received, Array.from({ length: published }, (_, n) => n), "in order, none lost");
  assert.ok(published >= 10, `the bystander's messages kept flowing (${published})`);
});
