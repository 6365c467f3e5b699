/**
 * SPEC section 1: the client protocol, event by event, with SocketShark's
 * error strings in their order.
 */
import assert from "node:assert/strict";
import { errorReply, okReply } from "./helpers/client.ts";
import { slowly, TestService } from "./helpers/service.ts";
import { TestShark } from "./helpers/shark.ts";

const INVALID = { status: "error", error: "Messages must be JSON and contain an event field." };

Deno.test("malformed frames get the malformed reply without an event key, and the connection stays open", async () => {
  await using shark = await TestShark.start({});
  const client = await shark.connect();
  for (
    const frame of [
      "not json",
      "[1,2]",
      '"text"',
      "42",
      "{}",
      '{"event":5}',
      '{"event":null}',
      JSON.stringify({ event: "x".repeat(41) }),
    ]
  ) {
    assert.deepEqual(await client.request(frame), INVALID, `for ${frame.slice(0, 30)}`);
  }
  await client.pingPong("still open");
});

Deno.test("an event name of exactly 40 characters is echoed as an unknown event", async () => {
  await using shark = await TestShark.start({});
  const client = await shark.connect();
  const name = "e".repeat(40);
  assert.deepEqual(await client.request({ event: name }), errorReply(name, "Event not found."));
});

Deno.test("an unknown event gets Event not found. with its name", async () => {
  await using shark = await TestShark.start({});
  const client = await shark.connect();
  assert.deepEqual(
    await client.request({ event: "dance" }),
    errorReply("dance", "Event not found."),
  );
});

Deno.test("a binary frame is decoded as UTF-8 JSON; invalid UTF-8 gets the malformed reply", async () => {
  await using shark = await TestShark.start({});
  const client = await shark.connect();
  client.send(new TextEncoder().encode(JSON.stringify({ event: "ping", data: "bin" })));
  assert.deepEqual(await client.next(), { event: "pong", data: "bin" });
  client.send(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]));
  assert.deepEqual(await client.next(), INVALID);
  client.send(new TextEncoder().encode("not json"));
  assert.deepEqual(await client.next(), INVALID);
});

Deno.test("ping echoes string data cut to 128 characters, anything else as null", async () => {
  await using shark = await TestShark.start({});
  const client = await shark.connect();
  await client.pingPong("abc");
  const long = await client.request({ event: "ping", data: "x".repeat(500) });
  assert.equal((long.data as string).length, 128);
  assert.deepEqual(await client.request({ event: "ping", data: { a: 1 } }), {
    event: "pong",
    data: null,
  });
  assert.deepEqual(await client.request({ event: "ping" }), { event: "pong", data: null });
});

Deno.test("auth: unsupported method, missing ticket, rejected ticket, unreachable service, success", async (t) => {
  await using service = new TestService({
    "/auth": ({ body }) =>
      body.ticket === "good"
        ? { status: "ok", user_id: "u1", session_id: "s1", secret: "not kept" }
        : body.ticket === "silent"
        ? { status: "error" }
        : { status: "error", error: "Ticket expired." },
  });
  const error = (error: string) => errorReply("auth", error);
  await t.step("no authentication configured: every method is unsupported", async () => {
    await using shark = await TestShark.start({});
    const client = await shark.connect();
    assert.deepEqual(
      await client.request({ event: "auth", ticket: "good" }),
      error("Authentication method unsupported."),
    );
  });
  await t.step("ticket: the method, the ticket, the service's verdict, success", async () => {
    await using shark = await TestShark.start({
      authentication: {
        ticket: { validation_url: service.url("/auth"), auth_fields: ["user_id", "session_id"] },
      },
    });
    const client = await shark.connect();
    assert.deepEqual(
      await client.request({ event: "auth", method: "password", ticket: "good" }),
      error("Authentication method unsupported."),
    );
    assert.deepEqual(await client.request({ event: "auth" }), error("Must specify ticket."));
    assert.deepEqual(
      await client.request({ event: "auth", ticket: "" }),
      error("Must specify ticket."),
    );
    assert.deepEqual(
      await client.request({ event: "auth", ticket: "old" }),
      error("Ticket expired."),
    );
    assert.deepEqual(
      await client.request({ event: "auth", ticket: "silent" }),
      error("Authentication failed."),
    );
    assert.deepEqual(
      await client.request({ event: "auth", method: "ticket", ticket: "good" }),
      okReply("auth"),
    );
    assert.deepEqual(service.bodies("/auth").at(-1), { ticket: "good" });
  });
  await t.step("an unreachable validation service: Service unavailable.", async () => {
    await using shark = await TestShark.start({
      authentication: { ticket: { validation_url: "http://127.0.0.1:9/nothing-listens" } },
    });
    const client = await shark.connect();
    assert.deepEqual(
      await client.request({ event: "auth", ticket: "t" }),
      error("Service unavailable."),
    );
  });
});

Deno.test("auth info is the configured auth fields of the reply; a later auth replaces it", async () => {
  await using service = new TestService({
    "/auth": ({ body }) =>
      body.ticket === "t1"
        ? { status: "ok", user_id: "u1", session_id: "s1", extra: "dropped" }
        : { status: "ok", user_id: "u2" },
  });
  await using shark = await TestShark.start({
    authentication: {
      ticket: { validation_url: service.url("/auth"), auth_fields: ["user_id", "session_id"] },
    },
    services: { books: { on_subscribe: service.url("/on_subscribe") } },
  });
  const client = await shark.connect();
  await client.auth("t1");
  await client.subscribe("books.a");
  await client.auth("t2");
  await client.subscribe("books.b");
  await service.waitFor("/on_subscribe", 2);
  assert.deepEqual(service.bodies("/on_subscribe"), [
    { subscription: "books.a", user_id: "u1", session_id: "s1" },
    { subscription: "books.b", user_id: "u2" },
  ]);
});

Deno.test("subscribe checks run in SPEC order, each with its error string", async () => {
  await using service = new TestService({
    "/auth": { status: "ok" },
    "/authorizer": ({ body }) =>
      body.subscription === "books.denied"
        ? { status: "error", error: "No access to this book." }
        : body.subscription === "books.silent"
        ? { status: "error" }
        : { status: "ok" },
    "/before_subscribe": ({ body }) =>
      body.subscription === "books.missing"
        ? { status: "error", error: "Book does not exist.", data: { hint: "try another" } }
        : body.subscription === "books.broken"
        ? { status: "error" }
        : { status: "ok" },
  });
  await using shark = await TestShark.start({
    authentication: { ticket: { validation_url: service.url("/auth") } },
    services: {
      books: {
        authorizer: service.url("/authorizer"),
        before_subscribe: service.url("/before_subscribe"),
      },
    },
  });
  const client = await shark.connect();
  const sub = (subscription?: unknown) => client.request({ event: "subscribe", subscription });
  const error = (error: string, subscription?: string, data?: unknown) =>
    errorReply("subscribe", error, {
      ...(data ? { data } : {}),
      ...(subscription ? { subscription } : {}),
    });
  // 1. format: missing, empty, no dot, empty service, empty topic, not a string.
  assert.deepEqual(await sub(), error("Invalid subscription format."));
  assert.deepEqual(await sub(""), error("Invalid subscription format."));
  assert.deepEqual(await sub("books"), error("Invalid subscription format.", "books"));
  assert.deepEqual(await sub(".a"), error("Invalid subscription format.", ".a"));
  assert.deepEqual(await sub("books."), error("Invalid subscription format.", "books."));
  assert.deepEqual(await sub(42), error("Invalid subscription format."));
  // 2. service before authentication: unknown service wins over not authenticated.
  assert.deepEqual(await sub("films.a"), error("Invalid service.", "films.a"));
  // 3. authentication.
  assert.deepEqual(await sub("books.a"), error("Authentication required.", "books.a"));
  await client.auth("t");
  // 5. authorizer, with and without its own error.
  assert.deepEqual(await sub("books.denied"), error("No access to this book.", "books.denied"));
  assert.deepEqual(await sub("books.silent"), error("Unauthorized.", "books.silent"));
  // 6. before_subscribe, its data passed on; default error text.
  assert.deepEqual(
    await sub("books.missing"),
    error("Book does not exist.", "books.missing", { hint: "try another" }),
  );
  assert.deepEqual(await sub("books.broken"), error("Unhandled exception.", "books.broken"));
  // before_subscribe is not called when the authorizer refuses.
  assert.deepEqual(
    service.bodies("/before_subscribe").map((body) => body.subscription),
    ["books.missing", "books.broken"],
  );
  // success, then 4. already subscribed.
  assert.deepEqual(
    await sub("books.a"),
    okReply("subscribe", {
      subscription: "books.a",
    }),
  );
  assert.deepEqual(await sub("books.a"), error("Already subscribed.", "books.a"));
});

Deno.test("an auth that returned no auth fields still counts as authenticated", async () => {
  await using service = new TestService({ "/auth": { status: "ok" } });
  await using shark = await TestShark.start({
    authentication: {
      ticket: { validation_url: service.url("/auth"), auth_fields: ["user_id"] },
    },
    services: { books: {} },
  });
  const client = await shark.connect();
  await client.auth("t");
  await client.subscribe("books.a");
});

Deno.test("require_authentication false lets an anonymous session subscribe", async () => {
  await using shark = await TestShark.start({
    services: { open: { require_authentication: false } },
  });
  const client = await shark.connect();
  assert.deepEqual(
    await client.subscribe("open.news"),
    okReply("subscribe", {
      subscription: "open.news",
    }),
  );
});

Deno.test("subscribe ok carries before_subscribe's data and the extra fields; on_subscribe follows", async () => {
  await using service = new TestService({
    "/before_subscribe": { status: "ok", data: { title: "Everyone poops" } },
  });
  await using shark = await TestShark.start({
    services: {
      books: {
        require_authentication: false,
        extra_fields: ["author_id"],
        before_subscribe: service.url("/before_subscribe"),
        on_subscribe: service.url("/on_subscribe"),
      },
    },
  });
  const client = await shark.connect();
  const reply = await client.subscribe("books.book_1", {
    author_id: "author_1",
    not_extra: "dropped",
  });
  assert.deepEqual(
    reply,
    okReply("subscribe", {
      author_id: "author_1",
      data: { title: "Everyone poops" },
      subscription: "books.book_1",
    }),
  );
  await service.waitFor("/on_subscribe");
  assert.deepEqual(service.paths(), ["/before_subscribe", "/on_subscribe"]);
  assert.deepEqual(service.bodies("/on_subscribe")[0], {
    subscription: "books.book_1",
    author_id: "author_1",
  });
});

Deno.test("a second subscribe to the same name fails even with other extra fields", async () => {
  await using shark = await TestShark.start({
    services: { books: { require_authentication: false, extra_fields: ["author_id"] } },
  });
  const client = await shark.subscriber("books.1", { author_id: "a" });
  assert.deepEqual(
    await client.request({ event: "subscribe", subscription: "books.1", author_id: "b" }),
    errorReply("subscribe", "Already subscribed.", { author_id: "b", subscription: "books.1" }),
  );
});

Deno.test("message: checks, on_message reply data, silence without data, error reply", async (t) => {
  await using service = new TestService({
    "/on_message": ({ body }) => {
      const data = body.data as Record<string, unknown>;
      if (data.kind === "answer") return { status: "ok", data: { status: "Book was updated." } };
      if (data.kind === "fail") return { status: "error", error: "Book could not be updated." };
      if (data.kind === "fail-silent") return { status: "error" };
      return { status: "ok" };
    },
  });
  await using shark = await TestShark.start({
    services: {
      books: {
        require_authentication: false,
        extra_fields: ["author_id"],
        on_message: service.url("/on_message"),
      },
      plain: { require_authentication: false },
    },
  });
  const client = await shark.connect();
  const message = (subscription: string, data: unknown) =>
    client.request({ event: "message", subscription, data });
  await t.step("checks: format, service, subscription", async () => {
    assert.deepEqual(
      await message("nodot", {}),
      errorReply("message", "Invalid subscription format.", { subscription: "nodot" }),
    );
    assert.deepEqual(
      await message("films.1", {}),
      errorReply("message", "Invalid service.", { subscription: "films.1" }),
    );
    assert.deepEqual(
      await message("books.1", {}),
      errorReply("message", "Subscription does not exist.", { subscription: "books.1" }),
    );
  });
  await client.subscribe("books.1", { author_id: "a1" });
  await t.step("on_message's data is the reply", async () => {
    assert.deepEqual(
      await message("books.1", { kind: "answer" }),
      okReply("message", {
        author_id: "a1",
        data: { status: "Book was updated." },
        subscription: "books.1",
      }),
    );
  });
  await t.step(
    "on_message's error is the error reply, Unhandled exception. without one",
    async () => {
      const echoed = { author_id: "a1", subscription: "books.1" };
      assert.deepEqual(
        await message("books.1", { kind: "fail" }),
        errorReply("message", "Book could not be updated.", echoed),
      );
      assert.deepEqual(
        await message("books.1", { kind: "fail-silent" }),
        errorReply("message", "Unhandled exception.", echoed),
      );
    },
  );
  await t.step("no reply when on_message returns no data, or there is no on_message", async () => {
    client.send({ event: "message", subscription: "books.1", data: { kind: "quiet" } });
    await client.silence(300);
    assert.deepEqual(service.bodies("/on_message").at(-1), {
      subscription: "books.1",
      author_id: "a1",
      data: { kind: "quiet" },
    });
    await client.subscribe("plain.1");
    client.send({ event: "message", subscription: "plain.1", data: { x: 1 } });
    await client.silence(300);
  });
});

Deno.test("unsubscribe: checks, before_unsubscribe veto keeps the subscription, ok with data, on_unsubscribe", async (t) => {
  let veto = true;
  await using service = new TestService({
    "/before_unsubscribe": () =>
      veto
        ? { status: "error", error: "Finish your chapter first." }
        : { status: "ok", data: { bye: true } },
  });
  await using shark = await TestShark.start({
    services: {
      books: {
        require_authentication: false,
        extra_fields: ["author_id"],
        before_unsubscribe: service.url("/before_unsubscribe"),
        on_unsubscribe: service.url("/on_unsubscribe"),
      },
    },
  });
  const client = await shark.connect();
  const unsubscribe = (subscription: string) =>
    client.request({ event: "unsubscribe", subscription });
  const notSubscribed = errorReply("unsubscribe", "Subscription does not exist.", {
    subscription: "books.1",
  });
  await t.step("checks: format, service, subscription", async () => {
    assert.equal((await unsubscribe("x")).error, "Invalid subscription format.");
    assert.equal((await unsubscribe("films.1")).error, "Invalid service.");
    assert.deepEqual(await unsubscribe("books.1"), notSubscribed);
  });
  await client.subscribe("books.1", { author_id: "a1" });
  await t.step("a before_unsubscribe error vetoes: still subscribed", async () => {
    assert.deepEqual(
      await unsubscribe("books.1"),
      errorReply("unsubscribe", "Finish your chapter first.", {
        author_id: "a1",
        subscription: "books.1",
      }),
    );
    await shark.publish({ subscription: "books.1", data: { still: "here" } });
    assert.deepEqual((await client.next()).data, { still: "here" });
  });
  await t.step(
    "ok with before_unsubscribe's data, then on_unsubscribe; nothing more arrives",
    async () => {
      veto = false;
      assert.deepEqual(
        await unsubscribe("books.1"),
        okReply("unsubscribe", {
          author_id: "a1",
          data: { bye: true },
          subscription: "books.1",
        }),
      );
      await service.waitFor("/on_unsubscribe");
      assert.deepEqual(service.bodies("/on_unsubscribe"), [
        { subscription: "books.1", author_id: "a1" },
      ]);
      await shark.publish({ subscription: "books.1", data: { gone: true } });
      await client.silence(200);
      assert.deepEqual(await unsubscribe("books.1"), notSubscribed);
    },
  );
});

Deno.test("events of one connection are handled one at a time, in arrival order", async () => {
  await using service = new TestService({ "/before_subscribe": slowly(300) });
  await using shark = await TestShark.start({
    services: {
      slow: { require_authentication: false, before_subscribe: service.url("/before_subscribe") },
    },
  });
  const client = await shark.connect();
  client.send({ event: "subscribe", subscription: "slow.1" });
  client.send({ event: "ping", data: "after" });
  client.send({ event: "subscribe", subscription: "slow.1" });
  const replies = await client.take(3);
  assert.deepEqual(replies.map((reply) => reply.event), ["subscribe", "pong", "subscribe"]);
  assert.equal(replies[0].status, "ok");
  assert.equal(replies[2].error, "Already subscribed.");
});

Deno.test("service messages keep flowing while an event waits on a slow service", async () => {
  await using service = new TestService({ "/on_message": slowly(500) });
  await using shark = await TestShark.start({
    services: {
      books: { require_authentication: false, on_message: service.url("/on_message") },
    },
  });
  const client = await shark.subscriber("books.1");
  client.send({ event: "message", subscription: "books.1", data: {} });
  await service.waitFor("/on_message");
  await shark.publish({ subscription: "books.1", data: { n: 1 } });
  const started = performance.now();
  assert.deepEqual((await client.next()).data, { n: 1 });
  assert.ok(performance.now() - started < 400, "message waited for the slow callback");
});
