/**
 * SPEC section 3: the ways to publish — `POST /publish`, `shark.publish()`,
 * a pub/sub channel — and what happens to invalid envelopes.
 */
import assert from "node:assert/strict";
import { BroadcastChannelPubSub, InvalidEnvelope } from "../mod.ts";
import { TestShark } from "./helpers/shark.ts";

const SECRET = "publish-secret-for-tests";
const CONFIG = {
  publish_api: { secret: SECRET },
  delivery: { metadata: false },
  services: { books: { require_authentication: false } },
};

function post(shark: TestShark, body: string, authorization?: string): Promise<Response> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (authorization !== undefined) headers.authorization = authorization;
  return fetch(shark.url("/publish"), { method: "POST", headers, body });
}

Deno.test("POST /publish with the bearer secret publishes one envelope or an array: 200 with the count", async (t) => {
  await using shark = await TestShark.start(CONFIG);
  const client = await shark.subscriber("books.1");
  await t.step("one envelope", async () => {
    const one = await post(
      shark,
      JSON.stringify({ subscription: "books.1", data: { n: 1 } }),
      `Bearer ${SECRET}`,
    );
    assert.equal(one.status, 200);
    assert.deepEqual(await one.json(), { status: "ok", published: 1 });
  });
  await t.step("an array of envelopes", async () => {
    const many = await post(
      shark,
      JSON.stringify([
        { subscription: "books.1", data: { n: 2 } },
        { subscription: "books.2", data: { n: 3 } },
        { subscription: "books.1", data: { n: 4 } },
      ]),
      `Bearer ${SECRET}`,
    );
    assert.deepEqual(await many.json(), { status: "ok", published: 3 });
  });
  const data = (await client.take(3)).map((message) => (message.data as { n: number }).n);
  assert.deepEqual(data, [1, 2, 4]);
});

Deno.test("POST /publish without or with a wrong secret is 401 and publishes nothing", async () => {
  await using shark = await TestShark.start(CONFIG);
  const client = await shark.subscriber("books.1");
  const body = JSON.stringify({ subscription: "books.1", data: {} });
  for (
    const authorization of [
      undefined,
      "Bearer wrong",
      `Basic ${SECRET}`,
      SECRET,
      `Bearer ${SECRET}x`,
    ]
  ) {
    const response = await post(shark, body, authorization);
    assert.equal(response.status, 401, String(authorization));
    assert.equal((await response.json()).status, "error");
  }
  await client.silence(200);
});

Deno.test("POST /publish reads the auth scheme case-insensitively: bearer and BEARER work too", async () => {
  await using shark = await TestShark.start(CONFIG);
  const client = await shark.subscriber("books.1");
  for (const scheme of ["bearer", "BEARER", "beaRer"]) {
    const body = JSON.stringify({ subscription: "books.1", data: scheme });
    const response = await post(shark, body, `${scheme} ${SECRET}`);
    assert.equal(response.status, 200, scheme);
    await response.body?.cancel();
    assert.equal((await client.next()).data, scheme);
  }
  const wrong = await post(shark, "{}", `bearer ${SECRET.toUpperCase()}`);
  assert.equal(wrong.status, 401, "the secret itself is compared exactly");
  await wrong.body?.cancel();
});

Deno.test("POST /publish with an invalid envelope is 400 with a reason, and nothing of the request is published", async () => {
  await using shark = await TestShark.start(CONFIG);
  const client = await shark.subscriber("books.1");
  const cases: [string, RegExp][] = [
    ["not json", /not JSON/],
    ["[]", /No envelope/],
    ['"text"', /JSON object/],
    [JSON.stringify({ data: {} }), /subscription/],
    [JSON.stringify({ subscription: "books", data: {} }), /SERVICE\.TOPIC/],
    [JSON.stringify({ subscription: "books.1" }), /"data"/],
    [JSON.stringify({ subscription: "books.1", data: {}, options: 3 }), /options/],
    [
      JSON.stringify([{ subscription: "books.1", data: "valid" }, { subscription: 7, data: {} }]),
      /envelope 1/,
    ],
  ];
  for (const [body, reason] of cases) {
    const response = await post(shark, body, `Bearer ${SECRET}`);
    assert.equal(response.status, 400, body);
    const reply = await response.json();
    assert.equal(reply.status, "error");
    assert.match(reply.error, reason);
  }
  await client.silence(200);
});

/** The status of `request`, its body discarded. */
async function statusOf(request: Promise<Response>): Promise<number> {
  const response = await request;
  await response.body?.cancel();
  return response.status;
}

Deno.test("POST /publish is 404 when publish_api.secret is not set", async () => {
  await using shark = await TestShark.start({});
  const body = JSON.stringify({ subscription: "a.b", data: {} });
  assert.equal(await statusOf(post(shark, body, "Bearer x")), 404);
});

Deno.test("POST /publish bodies over the limit are refused with 413", async () => {
  await using shark = await TestShark.start(CONFIG);
  const huge = JSON.stringify({ subscription: "books.1", data: "x".repeat(9 * 1024 * 1024) });
  assert.equal(await statusOf(post(shark, huge, `Bearer ${SECRET}`)), 413);
});

Deno.test("GET /publish is 405", async () => {
  await using shark = await TestShark.start(CONFIG);
  assert.equal(await statusOf(fetch(shark.url("/publish"))), 405);
});

Deno.test("shark.publish() publishes in-process and refuses invalid envelopes with InvalidEnvelope", async () => {
  await using shark = await TestShark.start(CONFIG);
  const client = await shark.subscriber("books.1");
  assert.equal(await shark.publish({ subscription: "books.1", data: "hello" }), 1);
  assert.equal((await client.next()).data, "hello");
  await assert.rejects(() => shark.publish({ subscription: "books.1" }), InvalidEnvelope);
  await assert.rejects(
    () => shark.publish([{ subscription: "books.1", data: 1 }, null]),
    /envelope 1/,
  );
  await client.silence(150);
});

Deno.test("invalid envelopes arriving through pub/sub are dropped and counted; the stream goes on", async () => {
  const name = `shark-test-${crypto.randomUUID()}`;
  await using shark = await TestShark.start(CONFIG, {
    pubsub: new BroadcastChannelPubSub({ name }),
  });
  await using stack = new DisposableStack();
  const publisher = stack.adopt(new BroadcastChannel(name), (channel) => channel.close());
  const client = await shark.subscriber("books.1");
  for (
    const payload of [
      "not json",
      "[1]",
      JSON.stringify({ data: {} }),
      JSON.stringify({ subscription: "books.1" }),
      JSON.stringify({ subscription: "books.other", data: "wrong channel" }),
      JSON.stringify({ subscription: "books.1", data: {}, options: "fast" }),
    ]
  ) {
    publisher.postMessage(["books.1", payload]);
  }
  publisher.postMessage(["books.1", JSON.stringify({ subscription: "books.1", data: "valid" })]);
  assert.deepEqual(await client.next(), {
    event: "message",
    subscription: "books.1",
    data: "valid",
  });
  await client.silence(100);
  assert.equal(shark.shark.metrics.snapshot()["dropped.invalid"], 6);
});

Deno.test("the 413 text names the publish limit (a literal, so that client bundles can leave the table out)", async () => {
  const { HttpErrorText, MAX_PUBLISH_BYTES } = await import("../src/protocol.ts");
  assert.equal(HttpErrorText.bodyTooLarge, `Body exceeds ${MAX_PUBLISH_BYTES} bytes.`);
});
