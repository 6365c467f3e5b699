/**
 * The small pure pieces behind the end-to-end rules: their edge cases are
 * cheaper to pin down here than through a socket.
 */
import assert from "node:assert/strict";
import { mergeExpositions } from "../cli/workers.ts";
import { normalizeTimestamp } from "../src/delivery/envelope.ts";
import { redactUrl, redactUrls } from "../src/config/redact.ts";
import { constantTimeEqual } from "../src/auth/constant_time.ts";
import { EMPTY, jsonEqual, nestsDeeperThan, parseNumber, pick } from "../src/json.ts";
import { isoTime } from "../src/clock.ts";

Deno.test("isoTime formats each millisecond exactly, whatever order they come in", () => {
  const times = [0, 1, 0, 1_700_000_000_123, 1, 1_700_000_000_123, 1_700_000_000_124, 0];
  for (const millis of times) assert.equal(isoTime(millis), new Date(millis).toISOString());
});

Deno.test("normalizeTimestamp: offsets, no offset as UTC, fractions, and what it refuses", async (t) => {
  await t.step("offsets, no offset as UTC, fractions cut to milliseconds", () => {
    assert.equal(normalizeTimestamp("2024-05-01T12:00:00+02:00"), "2024-05-01T10:00:00.000Z");
    assert.equal(normalizeTimestamp("2024-05-01T12:00:00.987654"), "2024-05-01T12:00:00.987Z");
    assert.equal(normalizeTimestamp("2024-05-01"), "2024-05-01T00:00:00.000Z");
    assert.equal(normalizeTimestamp("2024-05-01t12:00z"), "2024-05-01T12:00:00.000Z");
    assert.equal(normalizeTimestamp("2024-12-31T23:30:00-01"), "2025-01-01T00:30:00.000Z");
  });
  await t.step("impossible dates, other types and overlong text are refused", () => {
    for (
      const bad of [
        "2024-13-01",
        "2024-02-30",
        "2024-05-01T25:00:00",
        "x",
        "",
        5,
        null,
        "9".repeat(80),
      ]
    ) {
      assert.equal(normalizeTimestamp(bad), undefined, String(bad));
    }
  });
});

Deno.test("parseNumber reads finite numbers and numeric strings only", () => {
  assert.equal(parseNumber(3), 3);
  assert.equal(parseNumber("2.5"), 2.5);
  assert.equal(parseNumber(" 7 "), 7);
  for (const bad of ["", " ", "soon", true, null, undefined, NaN, Infinity, "Infinity", [1], {}]) {
    assert.equal(parseNumber(bad), undefined, String(bad));
  }
});

Deno.test("parseNumber reads a string as Python's float() does: no 0x/0b/0o, digit separators allowed", () => {
  // What float() accepts (infinities and NaN aside: they are not numbers here).
  const accepted: [string, number][] = [
    ["1e3", 1000],
    [" 1 ", 1],
    ["\t-2.5\n", -2.5],
    ["1_000", 1000],
    ["1_000.000_1", 1000.0001],
    ["+.5", 0.5],
    ["5.", 5],
    ["1E-2", 0.01],
    ["007", 7],
  ];
  for (const [text, value] of accepted) assert.equal(parseNumber(text), value, text);
  // What float() refuses, and Number() would take.
  for (const text of ["0x10", "0b1", "0o7", "0X1F", "1__0", "_1", "1_", "1_.5", "1e_3", "."]) {
    assert.equal(parseNumber(text), undefined, text);
  }
  for (const text of ["inf", "-inf", "nan", "Infinity", "1e400"]) {
    assert.equal(parseNumber(text), undefined, text);
  }
});

Deno.test("redactUrl masks the user name, password, every query value and the fragment; redactUrls every URL in a text", () => {
  assert.equal(
    redactUrl("https://svc:pw@hooks.internal:8443/cb/x?token=abc&flag&empty=#frag"),
    "https://*****:*****@hooks.internal:8443/cb/x?token=*****&*****&empty=*****#*****",
  );
  assert.equal(redactUrl("redis://:hunter2@10.0.0.1:6379/0"), "redis://:*****@10.0.0.1:6379/0");
  assert.equal(redactUrl("http://plain.internal/path"), "http://plain.internal/path");
  assert.equal(redactUrl("not a url ?token=x"), "not a url ?token=x");
  assert.equal(
    redactUrls(
      "error sending request for url (http://a:1/cb?token=abc): refused; see https://b/?k=v",
    ),
    "error sending request for url (http://a:1/cb?token=*****): refused; see https://b/?k=*****",
  );
});

Deno.test("jsonEqual compares decoded JSON values structurally", () => {
  assert.ok(jsonEqual({ a: [1, { b: null }] }, { a: [1, { b: null }] }));
  assert.ok(jsonEqual({ a: 1, b: 2 }, { b: 2, a: 1 }));
  assert.ok(!jsonEqual({ a: 1 }, { a: 1, b: undefined }));
  assert.ok(!jsonEqual([1, 2], { 0: 1, 1: 2 }));
  assert.ok(!jsonEqual("1", 1));
  assert.ok(!jsonEqual(null, {}));
});

Deno.test("nestsDeeperThan counts arrays and objects, iteratively", () => {
  assert.ok(!nestsDeeperThan({ a: [[1]] }, 3));
  assert.ok(nestsDeeperThan({ a: [[[1]]] }, 3));
  const deep = JSON.parse("[".repeat(100_000) + "]".repeat(100_000));
  assert.ok(nestsDeeperThan(deep, 64));
});

Deno.test("pick keeps listed keys as plain data, __proto__ included, and shares EMPTY", () => {
  const request = JSON.parse('{"__proto__":{"polluted":true},"org":1,"other":2}');
  const picked = pick(request, ["__proto__", "org", "missing"]);
  assert.deepEqual(Object.keys(picked), ["__proto__", "org"]);
  assert.equal(Object.getPrototypeOf(picked), Object.prototype);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.equal(pick(request, ["missing"]), EMPTY);
  assert.ok(Object.isFrozen(EMPTY));
});

Deno.test("constantTimeEqual is plain equality", () => {
  assert.ok(constantTimeEqual("Bearer s3cret", "Bearer s3cret"));
  assert.ok(!constantTimeEqual("Bearer s3cre", "Bearer s3cret"));
  assert.ok(!constantTimeEqual("", "x"));
  assert.ok(!constantTimeEqual("Bearer s3cret!", "Bearer s3cret"));
});

Deno.test("mergeExpositions keeps each family once and labels every sample with its worker", () => {
  const one = [
    "# HELP shark_ready Ready",
    "# TYPE shark_ready gauge",
    "shark_ready 1",
    "# HELP shark_events_total Events",
    "# TYPE shark_events_total counter",
    'shark_events_total{event="ping",outcome="ok"} 3',
    "",
  ].join("\n");
  const two = one.replace("shark_ready 1", "shark_ready 0").replace("} 3", "} 5");
  assert.equal(
    mergeExpositions([one, two]),
    [
      "# HELP shark_ready Ready",
      "# TYPE shark_ready gauge",
      'shark_ready{worker="0"} 1',
      'shark_ready{worker="1"} 0',
      "# HELP shark_events_total Events",
      "# TYPE shark_events_total counter",
      'shark_events_total{event="ping",outcome="ok",worker="0"} 3',
      'shark_events_total{event="ping",outcome="ok",worker="1"} 5',
      "",
    ].join("\n"),
  );
});
