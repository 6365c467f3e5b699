/**
 * Who may open a connection: `max_connections_per_address` counts each
 * client address on its own, proven on `Admission` with addresses a
 * loopback test cannot connect from.
 */
import assert from "node:assert/strict";
import { getLogger, type Logger } from "@logtape/logtape";
import { loadConfig, Metrics } from "../mod.ts";
import { Admission } from "../src/http/admission.ts";

Deno.test("max_connections_per_address counts each address on its own; a release frees a slot; an unknown address is not limited", () => {
  const metrics = new Metrics();
  const server = loadConfig({ server: { max_connections_per_address: 1 } }).server;
  const admission = new Admission({ server, metrics, log: getLogger(["shark-test"]) });
  const request = new Request("http://shark/", { headers: { upgrade: "websocket" } });
  const ask = (address: string | undefined) =>
    admission.refusal(request, { ready: true, open: 0, address })?.status;
  const first = {};
  assert.equal(ask("10.0.0.1"), undefined);
  admission.admit(first, "10.0.0.1");
  assert.equal(ask("10.0.0.1"), 429);
  assert.equal(ask("10.0.0.2"), undefined, "another address has its own count");
  admission.admit({}, "10.0.0.2");
  for (let i = 0; i < 3; i++) {
    assert.equal(ask(undefined), undefined, "a runtime that tells no address is not limited");
    admission.admit({}, undefined);
  }
  admission.release(first);
  assert.equal(ask("10.0.0.1"), undefined);
  assert.equal(metrics.snapshot()["rejected.max_connections_per_address"], 1);
});

Deno.test("max_memory_bytes without a memory reading: a warning at start, and upgrades are not refused for memory", () => {
  const warnings: string[] = [];
  const log = { warn: (message: string) => warnings.push(message) } as unknown as Logger;
  const metrics = new Metrics();
  const server = loadConfig({ server: { max_memory_bytes: 1048576 } }).server;
  const admission = new Admission({ server, metrics, log });
  assert.deepEqual(warnings, [
    "server.max_memory_bytes is not enforced: this runtime gives no memory reading",
  ]);
  const request = new Request("http://shark/", { headers: { upgrade: "websocket" } });
  assert.equal(admission.refusal(request, { ready: true, open: 0, address: undefined }), undefined);
  assert.equal(metrics.snapshot()["rejected.max_memory"] ?? 0, 0);
});

Deno.test("max_memory_bytes with a memory reading: no warning, and an upgrade above it gets 503", () => {
  const warnings: string[] = [];
  const log = { warn: (message: string) => warnings.push(message) } as unknown as Logger;
  const server = loadConfig({ server: { max_memory_bytes: 1048576 } }).server;
  const admission = new Admission({
    server,
    metrics: new Metrics(),
    log,
    memoryUsage: () => 1048577,
  });
  assert.deepEqual(warnings, []);
  const request = new Request("http://shark/", { headers: { upgrade: "websocket" } });
  assert.equal(
    admission.refusal(request, { ready: true, open: 0, address: undefined })?.status,
    503,
  );
});
