/**
 * SPEC section 2: service callbacks — who is called with which body, and the
 * HTTP transport rules (timeouts, tries, 429, failures, keep-alive, secrets).
 */
import assert from "node:assert/strict";
import { SharkProcess } from "./helpers/process.ts";
import { TestService } from "./helpers/service.ts";
import { withShark } from "./helpers/shark.ts";

Deno.test("callback body: subscription + extra fields + authorizer fields + auth info, auth info wins", async () => {
  const service = new TestService({
    "/auth": { status: "ok", user_id: "u1", session_id: "s1" },
    "/authorizer": { status: "ok", org_role: "admin", user_id: "spoofed", ignored: "x" },
  });
  try {
    await withShark({
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
    }, async (shark) => {
      const client = await shark.connect();
      await client.request({ event: "auth", ticket: "t" });
      await client.request({ event: "subscribe", subscription: "books.b1", author_id: "a1" });
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
      await client.close();
    });
  } finally {
    await service.close();
  }
});

Deno.test("a failed try is retried after wait; success on a later try counts", async () => {
  let calls = 0;
  const service = new TestService({
    "/authorizer": () => ++calls === 1 ? new Response("boom", { status: 500 }) : { status: "ok" },
  });
  try {
    await withShark({
      http: { timeout: 1, tries: 3, wait: 0.2 },
      services: {
        books: { require_authentication: false, authorizer: service.url("/authorizer") },
      },
    }, async (shark) => {
      const client = await shark.connect();
      assert.equal(
        (await client.request({ event: "subscribe", subscription: "books.1" })).status,
        "ok",
      );
      const [first, second] = service.calls;
      assert.equal(service.calls.length, 2);
      assert.ok(second.at - first.at >= 180, `waited ${second.at - first.at} ms between tries`);
      await client.close();
    });
  } finally {
    await service.close();
  }
});

Deno.test("non-2xx, non-JSON, non-object JSON and timeouts all fail; after the last try: Service unavailable.", async () => {
  const answers: Record<string, () => Response | Promise<Response>> = {
    "/status": () => new Response("{}", { status: 502 }),
    "/html": () => new Response("<html>oops</html>", { status: 200 }),
    "/array": () => Response.json([{ status: "ok" }]),
    "/slow": async () => {
      await new Promise((resolve) => setTimeout(resolve, 700));
      return Response.json({ status: "ok" });
    },
  };
  const service = new TestService(answers);
  try {
    const services = Object.fromEntries(
      Object.keys(answers).map((path) => [
        path.slice(1),
        { require_authentication: false, before_subscribe: service.url(path) },
      ]),
    );
    await withShark({ http: { timeout: 0.3, tries: 2, wait: 0.01 }, services }, async (shark) => {
      const client = await shark.connect();
      for (const name of Object.keys(services)) {
        assert.deepEqual(await client.request({ event: "subscribe", subscription: `${name}.1` }), {
          event: "subscribe",
          status: "error",
          error: "Service unavailable.",
          subscription: `${name}.1`,
        }, name);
        assert.equal(service.bodies(`/${name}`).length, 2, `${name} tried twice`);
      }
      assert.deepEqual(await client.request({ event: "ping", data: "alive" }), {
        event: "pong",
        data: "alive",
      });
      await client.close();
    });
  } finally {
    await service.close();
  }
});

Deno.test("429: waits the seconds of the first present reset header, else wait", async () => {
  const hits: Record<string, number> = {};
  const limited = (headers: Record<string, string>) => () => {
    hits[JSON.stringify(headers)] = (hits[JSON.stringify(headers)] ?? 0) + 1;
    return hits[JSON.stringify(headers)] === 1
      ? new Response("slow down", { status: 429, headers })
      : Response.json({ status: "ok" });
  };
  const service = new TestService({
    "/second-header": limited({ "Retry-After-Seconds": "0.4" }),
    "/both": limited({ "X-Rate-Limit-Reset": "0.05", "Retry-After-Seconds": "2" }),
    "/out-of-range": limited({ "X-Rate-Limit-Reset": "7200" }),
    "/garbage": limited({ "X-Rate-Limit-Reset": "soon" }),
  });
  try {
    const paths = ["/second-header", "/both", "/out-of-range", "/garbage"];
    await withShark({
      http: {
        timeout: 1,
        tries: 2,
        wait: 0.2,
        rate_limit_reset_header_names: ["X-Rate-Limit-Reset", "Retry-After-Seconds"],
      },
      services: Object.fromEntries(paths.map((path) => [
        path.slice(1),
        { require_authentication: false, before_subscribe: service.url(path) },
      ])),
    }, async (shark) => {
      const client = await shark.connect();
      const gaps: Record<string, number> = {};
      for (const path of paths) {
        const reply = await client.request({
          event: "subscribe",
          subscription: `${path.slice(1)}.1`,
        });
        assert.equal(reply.status, "ok", path);
        const [first, second] = service.calls.filter((call) => call.path === path);
        gaps[path] = second.at - first.at;
      }
      assert.ok(gaps["/second-header"] >= 380, `second header: ${gaps["/second-header"]}`);
      assert.ok(gaps["/both"] < 180, `first header wins: ${gaps["/both"]}`);
      assert.ok(
        gaps["/out-of-range"] >= 180 && gaps["/out-of-range"] < 1000,
        "out of range → wait",
      );
      assert.ok(gaps["/garbage"] >= 180 && gaps["/garbage"] < 1000, "garbage → wait");
      await client.close();
    });
  } finally {
    await service.close();
  }
});

Deno.test("429 on every try ends in Service unavailable.", async () => {
  const service = new TestService({
    "/limited": () => new Response("no", { status: 429, headers: { "X-Rate-Limit-Reset": "0" } }),
  });
  try {
    await withShark({
      http: { timeout: 1, tries: 3, wait: 0.01 },
      services: { books: { require_authentication: false, authorizer: service.url("/limited") } },
    }, async (shark) => {
      const client = await shark.connect();
      assert.equal(
        (await client.request({ event: "subscribe", subscription: "books.1" })).error,
        "Service unavailable.",
      );
      assert.equal(service.calls.length, 3);
      await client.close();
    });
  } finally {
    await service.close();
  }
});

Deno.test("connections to services are kept alive and reused across callbacks and sessions", async () => {
  const service = new TestService();
  try {
    await withShark({
      services: {
        books: {
          require_authentication: false,
          authorizer: service.url("/authorizer"),
          before_subscribe: service.url("/before_subscribe"),
        },
      },
    }, async (shark) => {
      for (let i = 0; i < 3; i++) {
        const client = await shark.connect();
        await client.request({ event: "subscribe", subscription: `books.${i}` });
        await client.close();
      }
      const ports = new Set(service.calls.map((call) => call.remotePort));
      assert.equal(service.calls.length, 6);
      assert.equal(ports.size, 1, `connections used: ${[...ports]}`);
    });
  } finally {
    await service.close();
  }
});

Deno.test("URL credentials are sent as Basic auth and never written to logs", async () => {
  const service = new TestService({
    "/auth": ({ headers }) =>
      headers.get("authorization") === `Basic ${btoa("svc:s3cr3t-pw")}`
        ? { status: "ok", user_id: "u" }
        : new Response("who are you", { status: 401 }),
    "/fails": () => new Response("down", { status: 503 }),
  });
  const withCredentials = (path: string) => service.url(path).replace("//", "//svc:s3cr3t-pw@");
  const config = {
    server: { port: 0 },
    log: { level: "debug" },
    http: { timeout: 1, tries: 2, wait: 0.01 },
    authentication: {
      ticket: { validation_url: withCredentials("/auth"), auth_fields: ["user_id"] },
    },
    services: { books: { before_subscribe: withCredentials("/fails") } },
  };
  const file = await Deno.makeTempFile({ suffix: ".json" });
  await Deno.writeTextFile(file, JSON.stringify(config));
  const shark = SharkProcess.spawn(["--config", file]);
  try {
    const port = await shark.listeningPort();
    const { TestClient } = await import("./helpers/client.ts");
    const client = await TestClient.connect(`ws://127.0.0.1:${port}/`);
    assert.deepEqual(await client.request({ event: "auth", ticket: "t" }), {
      event: "auth",
      status: "ok",
    });
    assert.equal(
      (await client.request({ event: "subscribe", subscription: "books.1" })).error,
      "Service unavailable.",
    );
    await client.close();
    await shark.waitForLog((line) => String(line.message).includes("503"));
    shark.child.kill("SIGTERM");
    const { code, stderr } = await shark.exit();
    assert.equal(code, 0);
    assert.ok(stderr.includes("*****"), "the redacted URL is logged");
    assert.ok(!stderr.includes("s3cr3t-pw"), "the password never reaches the logs");
  } finally {
    await service.close();
    await Deno.remove(file);
  }
});

Deno.test("replies without a content-length are read as a stream, and refused past 4 MiB", async () => {
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
  const service = new TestService({
    "/small": () => chunked(['{"status":"ok",', '"data":{"streamed":true}}']),
    "/huge": () => chunked(['{"status":"ok","data":"', "x".repeat(5 * 1024 * 1024), '"}']),
  });
  try {
    await withShark({
      http: { timeout: 2, tries: 1, wait: 0 },
      services: {
        small: { require_authentication: false, before_subscribe: service.url("/small") },
        huge: { require_authentication: false, before_subscribe: service.url("/huge") },
      },
    }, async (shark) => {
      const client = await shark.connect();
      const small = await client.request({ event: "subscribe", subscription: "small.1" });
      assert.deepEqual(small.data, { streamed: true });
      const huge = await client.request({ event: "subscribe", subscription: "huge.1" });
      assert.equal(huge.error, "Service unavailable.");
      await client.close();
    });
  } finally {
    await service.close();
  }
});
