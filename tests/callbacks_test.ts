/**
 * SPEC section 2: service callbacks — who is called with which body, and the
 * HTTP transport rules (timeouts, tries, 429, failures, keep-alive, secrets).
 */
import assert from "node:assert/strict";
import { TestClient } from "./helpers/client.ts";
import { SharkProcess } from "./helpers/process.ts";
import { type Answer, TestService } from "./helpers/service.ts";
import { TestShark } from "./helpers/shark.ts";
import { tempFile } from "./helpers/temp.ts";
import { delay } from "./helpers/wait.ts";

/**
 * One anonymous service per path of `service`, named after the path, whose
 * `before_subscribe` is that path: `/slow` serves `slow.1`.
 */
function servicePerPath(service: TestService, paths: string[]) {
  return Object.fromEntries(paths.map((path) => [
    path.slice(1),
    { require_authentication: false, before_subscribe: service.url(path) },
  ]));
}

Deno.test("callback body: subscription + extra fields + authorizer fields + auth info, auth info wins", async () => {
  await using service = new TestService({
    "/auth": { status: "ok", user_id: "u1", session_id: "s1" },
    "/authorizer": { status: "ok", org_role: "admin", user_id: "spoofed", ignored: "x" },
  });
  await using shark = await TestShark.start({
    authentication: {
      ticket: { validation_url: service.url("/auth"), auth_fields: ["user_id", "session_id"] },
    },
    services: {
      books: {
        extra_fields: ["author_id"],
        authorizer: service.url("/authorizer"),
        authorizer_fields: ["org_role", "user_id"],
        before_subscribe: service.url("/before_subscribe"),
        on_subscribe: service.url("/on_subscribe"),
        on_message: service.url("/on_message"),
        before_unsubscribe: service.url("/before_unsubscribe"),
        on_unsubscribe: service.url("/on_unsubscribe"),
      },
    },
  });
  const client = await shark.connect();
  await client.auth("t");
  await client.subscribe("books.b1", { author_id: "a1" });
  await service.waitFor("/on_subscribe");
  client.send({ event: "message", subscription: "books.b1", data: { action: "update" } });
  await service.waitFor("/on_message");
  await client.request({ event: "unsubscribe", subscription: "books.b1" });
  await service.waitFor("/on_unsubscribe");
  const base = { subscription: "books.b1", author_id: "a1", user_id: "u1", session_id: "s1" };
  // The authorizer itself has not yet returned its fields.
  assert.deepEqual(service.bodies("/authorizer"), [base]);
  const withAuthorizerFields = { ...base, org_role: "admin" };
  for (
    const path of [
      "/before_subscribe",
      "/on_subscribe",
      "/before_unsubscribe",
      "/on_unsubscribe",
    ]
  ) {
    assert.deepEqual(service.bodies(path), [withAuthorizerFields], path);
  }
  assert.deepEqual(service.bodies("/on_message"), [
    { ...withAuthorizerFields, data: { action: "update" } },
  ]);
  for (const call of service.calls) {
    assert.equal(call.headers.get("content-type"), "application/json");
  }
});

Deno.test("a failed try is retried after wait; success on a later try counts", async () => {
  let calls = 0;
  await using service = new TestService({
    "/authorizer": () => ++calls === 1 ? new Response("boom", { status: 500 }) : { status: "ok" },
  });
  await using shark = await TestShark.start({
    http: { timeout: 1, tries: 3, wait: 0.2 },
    services: {
      books: { require_authentication: false, authorizer: service.url("/authorizer") },
    },
  });
  await shark.subscriber("books.1");
  const [first, second] = service.calls;
  assert.equal(service.calls.length, 2);
  assert.ok(second.at - first.at >= 180, `waited ${second.at - first.at} ms between tries`);
});

Deno.test("non-2xx, non-JSON, non-object JSON and timeouts all fail; after the last try: Service unavailable.", async (t) => {
  const answers: Record<string, Answer> = {
    "/status": () => new Response("{}", { status: 502 }),
    "/html": () => new Response("<html>oops</html>", { status: 200 }),
    "/array": () => Response.json([{ status: "ok" }]),
    "/slow": async () => {
      await delay(700);
      return Response.json({ status: "ok" });
    },
  };
  await using service = new TestService(answers);
  const services = servicePerPath(service, Object.keys(answers));
  await using shark = await TestShark.start({
    http: { timeout: 0.3, tries: 2, wait: 0.01 },
    services,
  });
  const client = await shark.connect();
  for (const name of Object.keys(services)) {
    await t.step(`${name}: tried twice, then Service unavailable.`, async () => {
      assert.deepEqual(await client.request({ event: "subscribe", subscription: `${name}.1` }), {
        event: "subscribe",
        status: "error",
        error: "Service unavailable.",
        subscription: `${name}.1`,
      }, name);
      assert.equal(service.bodies(`/${name}`).length, 2, `${name} tried twice`);
    });
  }
  await client.pingPong("alive");
});

Deno.test("429: waits the seconds of the first present reset header, else wait", async (t) => {
  const hits: Record<string, number> = {};
  const limited = (headers: Record<string, string>) => () => {
    hits[JSON.stringify(headers)] = (hits[JSON.stringify(headers)] ?? 0) + 1;
    return hits[JSON.stringify(headers)] === 1
      ? new Response("slow down", { status: 429, headers })
      : Response.json({ status: "ok" });
  };
  await using service = new TestService({
    "/second-header": limited({ "Retry-After-Seconds": "0.4" }),
    "/both": limited({ "X-Rate-Limit-Reset": "0.05", "Retry-After-Seconds": "2" }),
    "/out-of-range": limited({ "X-Rate-Limit-Reset": "7200" }),
    "/garbage": limited({ "X-Rate-Limit-Reset": "soon" }),
  });
  await using shark = await TestShark.start({
    http: {
      timeout: 1,
      tries: 2,
      wait: 0.2,
      rate_limit_reset_header_names: ["X-Rate-Limit-Reset", "Retry-After-Seconds"],
    },
    services: servicePerPath(service, ["/second-header", "/both", "/out-of-range", "/garbage"]),
  });
  const client = await shark.connect();
  /** Subscribes to the service of `path` and returns the time between its two tries. */
  const gap = async (path: string) => {
    await client.subscribe(`${path.slice(1)}.1`);
    const [first, second] = service.calls.filter((call) => call.path === path);
    return second.at - first.at;
  };
  await t.step("the second header name when the first is absent", async () => {
    const waited = await gap("/second-header");
    assert.ok(waited >= 380, `second header: ${waited}`);
  });
  await t.step("the first header name wins", async () => {
    const waited = await gap("/both");
    assert.ok(waited < 180, `first header wins: ${waited}`);
  });
  await t.step("out of range: wait", async () => {
    const waited = await gap("/out-of-range");
    assert.ok(waited >= 180 && waited < 1000, "out of range → wait");
  });
  await t.step("not a number: wait", async () => {
    const waited = await gap("/garbage");
    assert.ok(waited >= 180 && waited < 1000, "garbage → wait");
  });
});

Deno.test("429 on every try ends in Service unavailable.", async () => {
  await using service = new TestService({
    "/limited": () => new Response("no", { status: 429, headers: { "X-Rate-Limit-Reset": "0" } }),
  });
  await using shark = await TestShark.start({
    http: { timeout: 1, tries: 3, wait: 0.01 },
    services: { books: { require_authentication: false, authorizer: service.url("/limited") } },
  });
  const client = await shark.connect();
  assert.equal(
    (await client.request({ event: "subscribe", subscription: "books.1" })).error,
    "Service unavailable.",
  );
  assert.equal(service.calls.length, 3);
});

Deno.test("connections to services are kept alive and reused across callbacks and sessions", async () => {
  await using service = new TestService();
  await using shark = await TestShark.start({
    services: {
      books: {
        require_authentication: false,
        authorizer: service.url("/authorizer"),
        before_subscribe: service.url("/before_subscribe"),
      },
    },
  });
  for (let i = 0; i < 3; i++) {
    const client = await shark.subscriber(`books.${i}`);
    await client.close();
  }
  const ports = new Set(service.calls.map((call) => call.remotePort));
  assert.equal(service.calls.length, 6);
  assert.equal(ports.size, 1, `connections used: ${[...ports]}`);
});

Deno.test("URL credentials are sent as Basic auth and never written to logs", async () => {
  await using service = new TestService({
    "/auth": ({ headers }) =>
      headers.get("authorization") === `Basic ${btoa("svc:s3cr3t-pw")}`
        ? { status: "ok", user_id: "u" }
        : new Response("who are you", { status: 401 }),
    "/fails": () => new Response("down", { status: 503 }),
  });
  const withCredentials = (path: string) => service.url(path).replace("//", "//svc:s3cr3t-pw@");
  await using config = await tempFile({
    server: { port: 0 },
    log: { level: "debug" },
    http: { timeout: 1, tries: 2, wait: 0.01 },
    authentication: {
      ticket: { validation_url: withCredentials("/auth"), auth_fields: ["user_id"] },
    },
    services: { books: { before_subscribe: withCredentials("/fails") } },
  });
  await using shark = SharkProcess.spawn(["--config", config.path]);
  const port = await shark.listeningPort();
  await using client = await TestClient.connect(`ws://127.0.0.1:${port}/`);
  await client.auth("t");
  assert.equal(
    (await client.request({ event: "subscribe", subscription: "books.1" })).error,
    "Service unavailable.",
  );
  await client.close();
  await shark.waitForLog((line) => String(line.message).includes("503"));
  const { code, stderr } = await shark.stop();
  assert.equal(code, 0);
  assert.ok(stderr.includes("*****"), "the redacted URL is logged");
  assert.ok(!stderr.includes("s3cr3t-pw"), "the password never reaches the logs");
});

Deno.test("replies without a content-length are read as a stream, and refused past 4 MiB", async (t) => {
  const chunked = (chunks: string[]) =>
    new Response(
      new ReadableStream({
        start(controller) {
          for (const chunk of chunks) controller.enqueue(new TextEncoder().encode(chunk));
          controller.close();
        },
      }),
      { headers: { "content-type": "application/json" } },
    );
  await using service = new TestService({
    "/small": () => chunked(['{"status":"ok",', '"data":{"streamed":true}}']),
    "/huge": () => chunked(['{"status":"ok","data":"', "x".repeat(5 * 1024 * 1024), '"}']),
  });
  await using shark = await TestShark.start({
    http: { timeout: 2, tries: 1, wait: 0 },
    services: servicePerPath(service, ["/small", "/huge"]),
  });
  const client = await shark.connect();
  await t.step("a streamed reply is read", async () => {
    const small = await client.subscribe("small.1");
    assert.deepEqual(small.data, { streamed: true });
  });
  await t.step("one past 4 MiB is refused", async () => {
    const huge = await client.request({ event: "subscribe", subscription: "huge.1" });
    assert.equal(huge.error, "Service unavailable.");
  });
});
