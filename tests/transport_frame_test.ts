/**
 * The transport's frame codec (RFC 6455 section 5) as pure functions over
 * bytes: every reading rule, any split of the input, and the frames built.
 */
import assert from "node:assert/strict";
import {
  binaryFrame,
  buildFrame,
  closeFrame,
  FrameSlab,
  isValidCloseCode,
  Opcode,
  SLAB_FRAME_MAX,
  textFrame,
} from "../cli/transport/frame.ts";
import { FrameReader, type FrameSink } from "../cli/transport/frame_reader.ts";
import { concat } from "./helpers/ws_frame.ts";

type Event =
  | ["message", string | Uint8Array]
  | ["ping" | "pong", Uint8Array]
  | ["close" | "fail", number, string];

class Recorder implements FrameSink {
  readonly events: Event[] = [];
  onMessage(data: string | Uint8Array): void {
    this.events.push(["message", data]);
  }
  onPing(payload: Uint8Array): void {
    this.events.push(["ping", payload]);
  }
  onPong(payload: Uint8Array): void {
    this.events.push(["pong", payload]);
  }
  onClose(code: number, reason: string): void {
    this.events.push(["close", code, reason]);
  }
  onFail(code: number, reason: string): void {
    this.events.push(["fail", code, reason]);
  }
}

const MASK = new Uint8Array([0x12, 0x34, 0x56, 0x78]);
const bytes = (text: string) => new TextEncoder().encode(text);

/** A masked client frame. */
function client(opcode: number, payload: Uint8Array | string, fin = true, rsv = 0): Uint8Array {
  const data = typeof payload === "string" ? bytes(payload) : payload;
  return buildFrame(opcode, data, { fin, mask: MASK, rsv });
}

/** Reads `input` in pieces of `step` bytes (copies: the reader consumes what it is given). */
function read(input: Uint8Array, step = input.byteLength, maxMessageBytes = 1 << 20) {
  const sink = new Recorder();
  const reader = new FrameReader({ maxMessageBytes, masked: true }, sink);
  for (let at = 0; at < input.byteLength; at += step) {
    reader.read(input.slice(at, at + step));
  }
  return { events: sink.events, reader };
}

/** The events of `input` read whole, byte by byte, and in every split in two. */
function readEverySplit(input: Uint8Array): Event[] {
  const whole = read(input).events;
  assert.deepEqual(read(input, 1).events, whole, "byte by byte");
  for (let cut = 1; cut < input.byteLength; cut++) {
    const sink = new Recorder();
    const reader = new FrameReader({ maxMessageBytes: 1 << 20, masked: true }, sink);
    reader.read(input.slice(0, cut));
    reader.read(input.slice(cut));
    assert.deepEqual(sink.events, whole, `split at ${cut}`);
  }
  return whole;
}

Deno.test("a masked text frame is one message, whatever pieces it arrives in", () => {
  assert.deepEqual(readEverySplit(client(Opcode.text, '{"event":"ping"}')), [
    ["message", '{"event":"ping"}'],
  ]);
});

Deno.test("a binary frame is its bytes", () => {
  assert.deepEqual(readEverySplit(client(Opcode.binary, new Uint8Array([0, 1, 255]))), [
    ["message", new Uint8Array([0, 1, 255])],
  ]);
});

Deno.test("empty text and binary frames are empty messages", () => {
  assert.deepEqual(read(concat(client(Opcode.text, ""), client(Opcode.binary, ""))).events, [
    ["message", ""],
    ["message", new Uint8Array(0)],
  ]);
});

Deno.test("payload lengths: 7-bit up to 125, 16-bit up to 65535, 64-bit beyond", () => {
  for (const length of [0, 1, 125, 126, 127, 65535, 65536, 200_000]) {
    const text = "a".repeat(length);
    const frame = client(Opcode.text, text);
    const header = length < 126 ? 2 : length < 65536 ? 4 : 10;
    assert.equal(frame.byteLength, header + 4 + length, `frame size for ${length}`);
    assert.equal(frame[1] & 0x7f, length < 126 ? length : length < 65536 ? 126 : 127);
    assert.deepEqual(read(frame, 7).events, [["message", text]], `length ${length}`);
  }
});

Deno.test("several frames in one chunk are all read, in order", () => {
  const input = concat(
    client(Opcode.text, "one"),
    client(Opcode.ping, "p"),
    client(Opcode.text, "two"),
  );
  assert.deepEqual(readEverySplit(input), [
    ["message", "one"],
    ["ping", bytes("p")],
    ["message", "two"],
  ]);
});

Deno.test("fragments are joined into one message; control frames may come between them", () => {
  const input = concat(
    client(Opcode.text, "Hel", false),
    client(Opcode.ping, "between"),
    client(Opcode.continuation, "lo ", false),
    client(Opcode.pong, ""),
    client(Opcode.continuation, "world"),
  );
  assert.deepEqual(readEverySplit(input), [
    ["ping", bytes("between")],
    ["pong", new Uint8Array(0)],
    ["message", "Hello world"],
  ]);
  const binary = concat(
    client(Opcode.binary, new Uint8Array([1, 2]), false),
    client(Opcode.continuation, new Uint8Array([3])),
  );
  assert.deepEqual(readEverySplit(binary), [["message", new Uint8Array([1, 2, 3])]]);
});

Deno.test("a character split across fragments is valid UTF-8", () => {
  const euro = bytes("€"); // three bytes
  const input = concat(
    client(Opcode.text, euro.subarray(0, 1), false),
    client(Opcode.continuation, euro.subarray(1, 2), false),
    client(Opcode.continuation, euro.subarray(2)),
  );
  assert.deepEqual(readEverySplit(input), [["message", "€"]]);
});

Deno.test("invalid UTF-8 in a text frame fails with 1007", () => {
  assert.deepEqual(read(client(Opcode.text, new Uint8Array([0x7b, 0xff, 0x7d]))).events, [
    ["fail", 1007, "invalid UTF-8"],
  ]);
  // An overlong encoding and a UTF-16 surrogate are invalid too.
  assert.equal(read(client(Opcode.text, new Uint8Array([0xc0, 0xaf]))).events[0][1], 1007);
  assert.equal(read(client(Opcode.text, new Uint8Array([0xed, 0xa0, 0x80]))).events[0][1], 1007);
});

Deno.test("invalid UTF-8 in a fragmented text fails at the fragment that carries it", () => {
  const input = concat(
    client(Opcode.text, "fine", false),
    client(Opcode.continuation, new Uint8Array([0xff]), false),
  );
  assert.deepEqual(read(input).events, [["fail", 1007, "invalid UTF-8"]]);
  const truncated = concat(
    client(Opcode.text, new Uint8Array([0xe2, 0x82]), false),
    client(Opcode.continuation, ""),
  );
  assert.deepEqual(read(truncated).events, [["fail", 1007, "invalid UTF-8"]]);
});

Deno.test("binary frames are not checked as UTF-8", () => {
  assert.deepEqual(read(client(Opcode.binary, new Uint8Array([0xff]))).events, [
    ["message", new Uint8Array([0xff])],
  ]);
});

Deno.test("an unmasked client frame fails with 1002", () => {
  assert.deepEqual(read(buildFrame(Opcode.text, bytes("hi"))).events, [
    ["fail", 1002, "unmasked frame from a client"],
  ]);
});

Deno.test("a client reader refuses masked frames from a server", () => {
  const sink = new Recorder();
  new FrameReader({ maxMessageBytes: 100, masked: false }, sink).read(client(Opcode.text, "x"));
  assert.deepEqual(sink.events, [["fail", 1002, "masked frame from the server"]]);
  const ok = new Recorder();
  new FrameReader({ maxMessageBytes: 100, masked: false }, ok).read(textFrame("x"));
  assert.deepEqual(ok.events, [["message", "x"]]);
});

Deno.test("RSV bits fail with 1002 (no extension is negotiated)", () => {
  for (const rsv of [1, 2, 4, 7]) {
    assert.deepEqual(read(client(Opcode.text, "x", true, rsv)).events, [
      ["fail", 1002, "reserved bits set"],
    ]);
  }
});

Deno.test("unknown opcodes fail with 1002", () => {
  for (const opcode of [3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf]) {
    assert.deepEqual(read(client(opcode, "")).events, [["fail", 1002, "unknown opcode"]]);
  }
});

Deno.test("control frames: at most 125 bytes and never fragmented", () => {
  assert.deepEqual(read(client(Opcode.ping, new Uint8Array(125))).events, [
    ["ping", new Uint8Array(125)],
  ]);
  assert.deepEqual(read(client(Opcode.ping, new Uint8Array(126))).events, [
    ["fail", 1002, "control frame over 125 bytes"],
  ]);
  assert.deepEqual(read(client(Opcode.ping, "", false)).events, [
    ["fail", 1002, "fragmented control frame"],
  ]);
});

Deno.test("a continuation without a message, or a new message inside one, fails with 1002", () => {
  assert.deepEqual(read(client(Opcode.continuation, "x")).events, [
    ["fail", 1002, "continuation without a message"],
  ]);
  assert.deepEqual(read(concat(client(Opcode.text, "a", false), client(Opcode.text, "b"))).events, [
    ["fail", 1002, "new message inside a fragmented message"],
  ]);
});

Deno.test("a 64-bit length with its top bit set fails with 1002", () => {
  const frame = new Uint8Array([0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, ...MASK]);
  assert.deepEqual(read(frame).events, [["fail", 1002, "invalid frame length"]]);
});

Deno.test("a frame over the limit fails with 1009 from its header, before its payload", () => {
  // The header announces 50 MB; only the header (and a few payload bytes) arrive.
  const header = new Uint8Array([0x82, 0xff, 0, 0, 0, 0, 0x02, 0xfa, 0xf0, 0x80, ...MASK, 1, 2]);
  const { events, reader } = read(header, header.byteLength, 65536);
  assert.deepEqual(events, [["fail", 1009, "message too big"]]);
  assert.equal(reader.buffered, 0);
  assert.ok(reader.failed);
  // Everything after the failure is ignored.
  reader.read(client(Opcode.text, "later"));
  assert.equal(events.length, 1);
  // A frame of exactly the limit passes.
  assert.deepEqual(read(client(Opcode.binary, new Uint8Array(100)), 100, 100).events, [
    ["message", new Uint8Array(100)],
  ]);
});

Deno.test("a fragmented message whose total would exceed the limit fails with 1009 at that fragment", () => {
  const sink = new Recorder();
  const reader = new FrameReader({ maxMessageBytes: 10, masked: true }, sink);
  reader.read(client(Opcode.text, "123456", false));
  assert.equal(sink.events.length, 0);
  // The next header announces 5 more bytes: 11 > 10, refused before its payload is read.
  reader.read(client(Opcode.continuation, "12345").subarray(0, 6));
  assert.deepEqual(sink.events, [["fail", 1009, "message too big"]]);
  assert.equal(reader.buffered, 0);
});

Deno.test("only the allowed payload is buffered while a large frame arrives", () => {
  const sink = new Recorder();
  const reader = new FrameReader({ maxMessageBytes: 1000, masked: true }, sink);
  const frame = client(Opcode.binary, new Uint8Array(1000));
  reader.read(frame.slice(0, 8));
  assert.equal(reader.buffered, 0, "a header alone allocates nothing");
  reader.read(frame.slice(8, 18));
  assert.equal(reader.buffered, 1000, "the payload, at most its announced (allowed) size");
  reader.read(frame.slice(18));
  assert.deepEqual(sink.events, [["message", new Uint8Array(1000)]]);
  assert.equal(reader.buffered, 0);
});

Deno.test("close frames: code and reason, none, or invalid", () => {
  const close = (payload: Uint8Array) => read(client(Opcode.close, payload)).events;
  assert.deepEqual(close(new Uint8Array([0x03, 0xe8, ...bytes("bye")])), [["close", 1000, "bye"]]);
  assert.deepEqual(close(new Uint8Array(0)), [["close", 1005, ""]]);
  assert.deepEqual(close(new Uint8Array([0x03])), [
    ["fail", 1002, "close frame with a one-byte payload"],
  ]);
  for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000]) {
    assert.deepEqual(close(new Uint8Array([code >> 8, code & 0xff])), [
      ["fail", 1002, `invalid close code ${code}`],
    ]);
  }
  assert.deepEqual(close(new Uint8Array([0x03, 0xe8, 0xff])), [
    ["fail", 1007, "invalid UTF-8 in the close reason"],
  ]);
});

Deno.test("valid close codes: 1000–1003, 1007–1014, 3000–4999", () => {
  const valid = [
    1000,
    1001,
    1002,
    1003,
    1007,
    1008,
    1009,
    1010,
    1011,
    1012,
    1013,
    1014,
    3000,
    4999,
  ];
  for (const code of valid) assert.ok(isValidCloseCode(code), `${code}`);
  for (const code of [999, 1004, 1005, 1006, 1015, 2000, 2999, 5000]) {
    assert.ok(!isValidCloseCode(code), `${code}`);
  }
});

Deno.test("server frames are unmasked, final, with the shortest length", () => {
  assert.deepEqual([...textFrame("hi")], [0x81, 2, 0x68, 0x69]);
  assert.deepEqual([...binaryFrame(new Uint8Array([7]))], [0x82, 1, 7]);
  const medium = textFrame("x".repeat(300));
  assert.deepEqual([...medium.subarray(0, 4)], [0x81, 126, 1, 44]);
  const large = textFrame("x".repeat(70_000));
  assert.deepEqual([...large.subarray(0, 10)], [0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
  assert.equal(large.byteLength, 70_010);
});

Deno.test("a text frame encodes non-ASCII text as UTF-8 and its length in bytes", () => {
  const frame = textFrame("é€");
  assert.deepEqual([...frame], [0x81, 5, 0xc3, 0xa9, 0xe2, 0x82, 0xac]);
  // 42 characters, 126 bytes: the length needs 16 bits.
  const wide = textFrame("€".repeat(42));
  assert.deepEqual([...wide.subarray(0, 4)], [0x81, 126, 0, 126]);
});

Deno.test("a prepared text frame is read back by a client reader, unchanged, however many read it", () => {
  const frame = textFrame('{"event":"message","data":"ü"}');
  const copy = frame.slice();
  for (let i = 0; i < 3; i++) {
    const sink = new Recorder();
    new FrameReader({ maxMessageBytes: 1000, masked: false }, sink).read(frame.slice());
    assert.deepEqual(sink.events, [["message", '{"event":"message","data":"ü"}']]);
  }
  assert.deepEqual(frame, copy);
});

Deno.test("close frames built: code and reason cut to 123 bytes at a character boundary", () => {
  assert.deepEqual([...closeFrame()], [0x88, 0]);
  assert.deepEqual([...closeFrame(1000, "ok")], [0x88, 4, 0x03, 0xe8, 0x6f, 0x6b]);
  const long = closeFrame(1001, "é".repeat(100));
  assert.equal(long[1], 2 + 122);
  const sink = new Recorder();
  new FrameReader({ maxMessageBytes: 1000, masked: false }, sink).read(long);
  assert.deepEqual(sink.events, [["close", 1001, "é".repeat(61)]]);
});

Deno.test("masking: a masked frame carries the key and the XORed payload", () => {
  const frame = buildFrame(Opcode.text, bytes("abcde"), { mask: MASK });
  assert.deepEqual([...frame.subarray(0, 6)], [0x81, 0x85, ...MASK]);
  assert.deepEqual(
    [...frame.subarray(6)],
    [..."abcde"].map((c, i) => c.charCodeAt(0) ^ MASK[i % 4]),
  );
});

Deno.test("small text frames are cut one after another from a shared slab; larger ones have their own buffer", () => {
  const slab = new FrameSlab();
  const frames = Array.from({ length: 3 }, (_, i) => textFrame(`{"n":${i}}`, slab));
  for (const [i, frame] of frames.entries()) {
    assert.deepEqual([...frame.subarray(2)], [...new TextEncoder().encode(`{"n":${i}}`)]);
  }
  const [first, second] = frames;
  assert.equal(second.buffer, first.buffer, "one allocation for both");
  assert.ok(first.buffer.byteLength > first.byteLength);
  // A new slab starts when the frame does not fit in what is left of the current one.
  const filler = Array.from({ length: 20 }, () => textFrame("y".repeat(300), slab));
  assert.ok(filler.some((frame) => frame.buffer !== first.buffer));
  assert.ok(
    filler.every((frame) => frame.byteOffset + frame.byteLength <= frame.buffer.byteLength),
  );
  const large = textFrame("x".repeat(SLAB_FRAME_MAX), slab);
  assert.equal(large.buffer.byteLength, large.byteLength, "over the slab size for frames: its own");
});
