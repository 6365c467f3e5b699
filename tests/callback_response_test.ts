/**
 * The CLI callback client's pieces without a socket: the HTTP/1.1 response
 * parser (every framing, fed whole and byte by byte) and the one-timer
 * deadlines of the tries in flight, on a fake clock.
 */
import assert from "node:assert/strict";
import { DEADLINE_SLACK_MS, Deadlines } from "../cli/deadlines.ts";
import { ResponseError, ResponseParser } from "../cli/callbacks/response_parser.ts";
import { FakeClock } from "./helpers/clock.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

/** Feeds `text` whole, then byte by byte; both must give the same response. */
function parse(text: string, maxBytes = 1024, ended = false) {
  const results = [];
  for (const pieces of [[bytes(text)], [...bytes(text)].map((byte) => Uint8Array.of(byte))]) {
    const parser = new ResponseParser(maxBytes);
    let complete = false;
    for (const piece of pieces) complete = parser.feed(piece);
    if (ended) parser.end();
    else assert.ok(complete, "complete");
    results.push({
      status: parser.head!.status,
      keepAlive: parser.head!.keepAlive,
      body: parser.text(),
      extra: parser.extra,
    });
  }
  assert.deepEqual(results[0], results[1]);
  return results[0];
}

Deno.test("response: a content-length body, keep-alive by default in HTTP/1.1", () => {
  assert.deepEqual(
    parse('HTTP/1.1 200 OK\r\nContent-Length: 15\r\nX-A: 1\r\n\r\n{"status":"ok"}'),
    { status: 200, keepAlive: true, body: '{"status":"ok"}', extra: false },
  );
});

Deno.test("response: a chunked body with extensions and trailers", () => {
  const text = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" +
    '4;name=x\r\n{"st\r\nb\r\natus":"ok"}\r\n0\r\nTrailer: y\r\n\r\n';
  assert.deepEqual(parse(text), {
    status: 200,
    keepAlive: true,
    body: '{"status":"ok"}',
    extra: false,
  });
});

Deno.test("response: without a length the body runs to the end of the connection; one cut short fails", () => {
  assert.deepEqual(parse("HTTP/1.1 200 OK\r\n\r\n{}", 1024, true), {
    status: 200,
    keepAlive: true,
    body: "{}",
    extra: false,
  });
  const cut = new ResponseParser(1024);
  cut.feed(bytes("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{}"));
  assert.throws(() => cut.end(), ResponseError);
});

Deno.test("response: informational answers are skipped; 204 has no body", () => {
  const text = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
  assert.deepEqual(parse(text), { status: 204, keepAlive: true, body: "", extra: false });
});

Deno.test("response: connection close, HTTP/1.0 and bytes after the response end keep-alive", () => {
  const close = parse("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}");
  assert.equal(close.keepAlive, false);
  assert.equal(parse("HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\n{}").keepAlive, false);
  const kept = "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\ncontent-length: 2\r\n\r\n{}";
  assert.equal(parse(kept).keepAlive, true);
  assert.equal(parse("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}junk").extra, true);
});

Deno.test("response: UTF-8 across pieces, a BOM dropped, as Response.text() reads it", () => {
  const body = '\ufeff{"name":"Zoë 🦈"}';
  const length = bytes(body).byteLength;
  assert.equal(
    parse(`HTTP/1.1 200 OK\r\ncontent-length: ${length}\r\n\r\n${body}`).body,
    '{"name":"Zoë 🦈"}',
  );
});

Deno.test("response: too large bodies, malformed heads and framings are refused", () => {
  const refused = (text: string, maxBytes = 8) =>
    assert.throws(() => new ResponseParser(maxBytes).feed(bytes(text)), ResponseError, text);
  refused("HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n");
  refused("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n9\r\n123456789\r\n0\r\n\r\n");
  refused("HTTP/1.1 200 OK\r\n\r\n123456789");
  refused("HTTP/2 200\r\n\r\n");
  refused("HTTP/1.1 200 OK\r\nbad field\r\n\r\n");
  refused("HTTP/1.1 200 OK\r\ncontent-length: 2, 3\r\n\r\n");
  refused("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n");
  refused("HTTP/1.1 101 Switching Protocols\r\n\r\n");
});

Deno.test("deadlines: one timer; a deadline expires on time unless settled, no sooner", () => {
  const clock = new FakeClock();
  const deadlines = new Deadlines(clock);
  const expired: string[] = [];
  const a = deadlines.add(1000, () => expired.push("a"));
  clock.tick(10);
  deadlines.add(1000, () => expired.push("b"));
  const c = deadlines.add(1000, () => expired.push("c"));
  assert.equal(clock.pending, 1, "one timer for every try");
  deadlines.settle(a);
  deadlines.settle(c);
  clock.tick(999);
  assert.deepEqual(expired, []);
  clock.tick(1 + DEADLINE_SLACK_MS);
  assert.deepEqual(expired, ["b"]);
  assert.equal(deadlines.live, 0);
  assert.equal(clock.pending, 0, "no timer once nothing is in flight");
});

Deno.test("deadlines: a later deadline waits at most the slack after the timer ran", () => {
  const clock = new FakeClock();
  const deadlines = new Deadlines(clock);
  const expired: number[] = [];
  deadlines.add(100, () => expired.push(clock.now()));
  clock.tick(1);
  deadlines.add(100, () => expired.push(clock.now()));
  clock.tick(200);
  assert.deepEqual(expired, [100, 100 + DEADLINE_SLACK_MS]);
});

Deno.test("deadlines: a shorter timeout added later expires first; clear forgets every one", () => {
  const clock = new FakeClock();
  const deadlines = new Deadlines(clock);
  const expired: string[] = [];
  deadlines.add(1000, () => expired.push("long"));
  deadlines.add(100, () => expired.push("short"));
  clock.tick(100);
  assert.deepEqual(expired, ["short"]);
  deadlines.clear();
  clock.tick(2000);
  assert.deepEqual(expired, ["short"]);
  assert.equal(clock.pending, 0);
});
