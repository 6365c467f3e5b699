/**
 * The pure pieces the tests and the benchmarks share: the RFC 6455 frame
 * codec of the raw clients and the bounded waits; and the check for an
 * optional program that decides whether a test runs or is skipped. A wrong
 * helper would make other tests pass or fail for the wrong reason.
 */
import assert from "node:assert/strict";
import { toolAvailable } from "./helpers/tool.ts";
import { Inbox, waitUntil } from "./helpers/wait.ts";
import {
  clientFrame,
  frameAt,
  Opcode,
  upgradeRequest,
  upgradeResponse,
} from "./helpers/ws_frame.ts";

/** An unmasked frame as a server sends it. */
function serverFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const length = payload.length;
  const header = length < 126
    ? [0x80 | opcode, length]
    : length < 65536
    ? [0x80 | opcode, 126, length >> 8, length & 0xff]
    : [0x80 | opcode, 127, 0, 0, 0, 0, ...[24, 16, 8, 0].map((shift) => (length >>> shift) & 0xff)];
  return new Uint8Array([...header, ...payload]);
}

/** The three payload length encodings at their edges. */
const LENGTHS = [0, 125, 126, 65535, 65536];

Deno.test("clientFrame masks the payload behind the header of its length", () => {
  for (const length of LENGTHS) {
    const payload = Uint8Array.from({ length }, (_, i) => i % 251);
    const frame = clientFrame(Opcode.binary, payload);
    const header = length < 126 ? 2 : length < 65536 ? 4 : 10;
    assert.equal(frame[0], 0x80 | Opcode.binary);
    assert.equal(frame[1] & 0x80, 0x80, "masked");
    assert.equal(frame.length, header + 4 + length);
    const mask = frame.subarray(header, header + 4);
    const unmasked = frame.subarray(header + 4).map((byte, i) => byte ^ mask[i % 4]);
    assert.deepEqual(unmasked, payload, `length ${length}`);
  }
  const text = clientFrame(Opcode.text, "é");
  assert.equal(text[1], 0x80 | 2, "a string is sent as UTF-8");
});

Deno.test("frameAt finds each frame of a buffer, and nothing while one is incomplete", () => {
  for (const length of LENGTHS) {
    const payload = new Uint8Array(length).fill(7);
    const frame = serverFrame(Opcode.text, payload);
    const both = new Uint8Array([...frame, ...serverFrame(Opcode.ping, new Uint8Array([1]))]);
    const first = frameAt(both, 0)!;
    assert.equal(first.opcode, Opcode.text);
    assert.equal(first.end - first.start, length);
    assert.equal(first.end, frame.length);
    const second = frameAt(both, first.end)!;
    assert.deepEqual([second.opcode, second.end - second.start], [Opcode.ping, 1]);
    for (const cut of [1, frame.length - 1]) {
      assert.equal(frameAt(frame.subarray(0, cut), 0), undefined, `cut at ${cut}`);
    }
  }
});

Deno.test("upgradeRequest asks for a WebSocket; upgradeResponse waits for the whole head", () => {
  const request = new TextDecoder().decode(upgradeRequest(9000, "a2V5", { Origin: "https://x" }));
  assert.match(request, /^GET \/ HTTP\/1\.1\r\nHost: 127\.0\.0\.1:9000\r\n/);
  for (const line of ["Upgrade: websocket", "Sec-WebSocket-Key: a2V5", "Origin: https://x"]) {
    assert.ok(request.includes(`\r\n${line}\r\n`), line);
  }
  assert.ok(request.endsWith("\r\n\r\n"));
  const head = new TextEncoder().encode("HTTP/1.1 101 Switching Protocols\r\nA: b\r\n\r\n");
  const answer = new Uint8Array([...head, 0x81]);
  assert.equal(upgradeResponse(answer.subarray(0, head.length - 1)), undefined);
  assert.deepEqual(upgradeResponse(answer), {
    statusLine: "HTTP/1.1 101 Switching Protocols",
    status: 101,
    end: answer.length - 1,
  });
});

Deno.test("waitUntil returns the first truthy value, and names what it waited for when time is up", async () => {
  let polls = 0;
  assert.equal(await waitUntil(() => ++polls >= 3 && "done", 1000, "three polls"), "done");
  await assert.rejects(waitUntil(() => false, 50, "never"), /^Error: never: not within 50 ms$/);
});

Deno.test("Inbox: next() waits for the next item, in order; a closed empty inbox fails at once", async () => {
  const inbox = new Inbox<number>();
  setTimeout(() => inbox.push(1), 20);
  assert.equal(await inbox.next(1000), 1);
  inbox.push(2);
  inbox.push(3);
  inbox.close();
  assert.deepEqual([await inbox.next(10), await inbox.next(10)], [2, 3]);
  const started = performance.now();
  await assert.rejects(inbox.next(1000), /connection closed/);
  assert.ok(performance.now() - started < 500);
  await assert.rejects(new Inbox().next(30), /not within 30 ms/);
});

/** Runs `body` with `console.warn` recorded instead of printed; returns the warnings. */
async function warnings(body: () => Promise<void>): Promise<string[]> {
  const seen: string[] = [];
  const warn = console.warn;
  console.warn = (...args: unknown[]) => seen.push(args.join(" "));
  try {
    await body();
  } finally {
    console.warn = warn;
  }
  return seen;
}

Deno.test("toolAvailable: a program not found is false, not a throw, with one loud warning", async () => {
  const missing = `shark-no-such-program-${crypto.randomUUID()}`;
  const seen = await warnings(async () => {
    assert.equal(await toolAvailable(missing, { skips: "the imaginary tests" }), false);
    assert.equal(await toolAvailable(missing, { skips: "the imaginary tests" }), false);
  });
  assert.deepEqual(seen.map((line) => line.trim()), [
    `*** ${missing} not installed: the imaginary tests SKIPPED ***`,
  ]);
});

Deno.test("toolAvailable: a program that runs is true; one that runs and fails is false", async () => {
  const seen = await warnings(async () => {
    assert.equal(await toolAvailable("true", { args: [] }), true);
    assert.equal(await toolAvailable(Deno.execPath()), true);
    assert.equal(
      await toolAvailable(Deno.execPath(), {
        args: ["eval", "Deno.exit(3)"],
        name: "deno exiting 3",
        skips: "nothing real",
      }),
      false,
    );
  });
  assert.deepEqual(seen.map((line) => line.trim()), [
    "*** deno exiting 3 not installed: nothing real SKIPPED ***",
  ]);
});
