/**
 * Log lines read as sentences in both `log.format`s: interpolated values
 * appear bare in the message (`listening on ws://127.0.0.1:9000`, not
 * `listening on "ws"://"127.0.0.1":9000`) and stay structured in the JSON
 * line's properties.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import denoJson from "../deno.json" with { type: "json" };
import { logFormatter } from "../cli/log_format.ts";
import { TestClient } from "./helpers/client.ts";
import { SharkProcess } from "./helpers/process.ts";

/** Runs `main.ts` in `format`, opens and closes one client, stops it; its stderr lines. */
async function linesOf(format: "json" | "text"): Promise<string[]> {
  const shark = SharkProcess.spawn(["--port", "0"], {
    SHARK_CONFIG: JSON.stringify({ log: { format } }),
  });
  try {
    const listening = await waitForLine(shark, /listening on ws:\/\/127\.0\.0\.1:(\d+)/);
    const client = await TestClient.connect(`ws://127.0.0.1:${listening[1]}/`);
    await client.request({ event: "ping" });
    await client.close();
    await waitForLine(shark, /connection closed by client/);
  } finally {
    shark.child.kill("SIGTERM");
  }
  const { code } = await shark.exit();
  assert.equal(code, 0);
  return shark.lines.filter((line) => line.trim() !== "");
}

async function waitForLine(shark: SharkProcess, pattern: RegExp): Promise<RegExpMatchArray> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    for (const line of shark.lines) {
      const match = line.match(pattern);
      if (match) return match;
    }
    if (Date.now() > deadline) {
      throw new Error(`no line matching ${pattern}:\n${shark.lines.join("\n")}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The message of a text line: what follows `[LVL] category: `. */
function textMessage(line: string): string {
  const match = line.match(
    /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [+-]\d\d:\d\d \[\w{3}\] shark: (.*)$/,
  );
  assert.ok(match, `not a text log line: ${line}`);
  return match[1];
}

Deno.test("JSON log lines carry sentences as messages and the values as properties", async () => {
  const records = (await linesOf("json")).map((line) => JSON.parse(line));
  const messages = records.map((record) => record.message as string);
  assert.equal(
    messages[0],
    `Shark ${denoJson.version} starting with configuration from SHARK_CONFIG`,
  );
  assert.deepEqual(records[0].properties, {
    version: denoJson.version,
    source: "SHARK_CONFIG",
    adapter: "memory",
    workers: 1,
  });
  const listening = records.find((record) => record.message.startsWith("listening on"));
  assert.equal(listening.message, `listening on ws://127.0.0.1:${listening.properties.port}`);
  assert.equal(listening.properties.scheme, "ws");
  assert.equal(listening.properties.hostname, "127.0.0.1");
  assert.equal(typeof listening.properties.port, "number");
  assert.ok(messages.includes("connection closed by client (1000)"), messages.join("\n"));
  assert.ok(messages.includes("SIGTERM received: shutting down"), messages.join("\n"));
  for (const message of messages) assert.ok(!message.includes('"'), `quoted value in: ${message}`);
});

Deno.test("text log lines carry the same sentences as the JSON format", async () => {
  const [json, text] = await Promise.all([linesOf("json"), linesOf("text")]);
  const port = /127\.0\.0\.1:\d+/g;
  const fromJson = json.map((line) => JSON.parse(line).message.replace(port, "PORT"));
  const fromText = text.map((line) => textMessage(line).replace(port, "PORT"));
  // Session ids are properties, not part of the messages, so the two runs read alike.
  assert.deepEqual(fromText, fromJson);
  assert.ok(fromText.includes("listening on ws://PORT"), fromText.join("\n"));
});

function record(message: unknown[], properties: Record<string, unknown>): LogRecord {
  return {
    category: ["shark"],
    level: "warning",
    message,
    rawMessage: "",
    timestamp: Date.UTC(2026, 10, 22, 10),
    properties,
  };
}

Deno.test("a value with a line break or an escape sequence stays on its log line", () => {
  const reason = "bad\nfake line \x1b[31mred";
  const input = record(["invalid envelope dropped: ", reason, ""], { reason });
  const text = logFormatter("text")(input);
  assert.equal(text.trimEnd().split("\n").length, 1, text);
  assert.ok(!text.includes("\x1b"), text);
  const json = JSON.parse(logFormatter("json")(input));
  assert.equal(json.message, `invalid envelope dropped: ${reason}`);
  assert.equal(json.properties.reason, reason);
});

Deno.test("numbers and objects in a message read as JSON, an error as its message", () => {
  const input = record(
    ["closing ", 3, " connections: ", { a: 1 }, " after ", new Error("boom"), ""],
    {},
  );
  assert.equal(
    JSON.parse(logFormatter("json")(input)).message,
    'closing 3 connections: {"a":1} after boom',
  );
});
