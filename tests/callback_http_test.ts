/**
 * SPEC section 2's transport rules on each client that can carry the
 * callbacks (`CallbackHttp`): `fetch`, the engine's default, and the CLI's
 * HTTP/1.1 client over `node:net`, against a real service on loopback. The
 * same cases for both: the POST as sent, statuses and headers, the framings
 * of a reply, its size limit, the timeout, kept-alive connections and
 * closing. The CLI client's own: a kept-alive connection the service closed
 * while idle is not a failed try.
 */
import assert from "node:assert/strict";
import type { CallbackHttp, CallbackRequest } from "../src/callbacks/callback_http.ts";
import { FetchCallbackHttp } from "../src/callbacks/fetch_http.ts";
import { callbackHttpFor, NetCallbackHttp } from "../cli/callbacks/net_http.ts";
import { TestService } from "./helpers/service.ts";

const CLIENTS: Record<string, () => CallbackHttp> = {
  fetch: () => new FetchCallbackHttp(),
  net: () => new NetCallbackHttp(),
};

const HEADERS = { "content-type": "application/json", authorization: "Basic c3ZjOnB3" };

function request(url: string, more: Partial<CallbackRequest> = {}): CallbackRequest {
  return {
    url,
    headers: HEADERS,
    body: '{"ticket":"t🦈"}',
    timeoutMs: 2000,
    maxBytes: 1024,
    ...more,
  };
}

/**
 * A service on a raw socket that answers each request with `answer(n)`, the
 * bytes it writes for the n-th request (from 0) of that connection, and then
 * closes the connection when `close(n)` says so. `null` writes nothing.
 */
function rawService(
  answer: (n: number) => string | null,
  close: (n: number) => boolean = () => false,
) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const connections = new Set<Deno.Conn>();
  let accepted = 0;
  (async () => {
    for await (const conn of listener) {
      accepted++;
      connections.add(conn);
      (async () => {
        const buffer = new Uint8Array(65536);
        let text = "";
        for (let n = 0;;) {
          const read = await conn.read(buffer).catch(() => null);
          if (read === null) break;
          // One character per byte, so that the lengths below are in bytes.
          text += new TextDecoder("latin1").decode(buffer.subarray(0, read));
          const end = text.indexOf("\r\n\r\n");
          const length = Number(/content-length: (\d+)/i.exec(text)?.[1] ?? 0);
          if (end < 0 || text.length < end + 4 + length) continue;
          text = "";
          const reply = answer(n);
          if (reply !== null) await conn.write(new TextEncoder().encode(reply)).catch(() => {});
          if (close(n++)) break;
        }
        if (connections.delete(conn)) conn.close();
      })();
    }
  })();
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/hook?token=x`,
    get accepted() {
      return accepted;
    },
    [Symbol.dispose]() {
      listener.close();
      for (const conn of connections) conn.close();
      connections.clear();
    },
  };
}

const OK = 'HTTP/1.1 200 OK\r\ncontent-length: 15\r\n\r\n{"status":"ok"}';

for (const [name, create] of Object.entries(CLIENTS)) {
  Deno.test(`${name}: the POST carries the headers and the body; the answer its status, headers and text`, async () => {
    await using service = new TestService({
      "/auth": () => Response.json({ status: "ok", user_id: "ü" }, { headers: { "x-a": "1" } }),
    });
    const http = create();
    const answer = await http.post(request(service.url("/auth")));
    http.close();
    assert.equal(answer.status, 200);
    assert.equal(answer.header("X-A"), "1");
    assert.equal(answer.header("x-missing"), null);
    assert.deepEqual(JSON.parse(answer.body), { status: "ok", user_id: "ü" });
    const [call] = service.calls;
    assert.equal(call.headers.get("authorization"), HEADERS.authorization);
    assert.equal(call.headers.get("content-type"), "application/json");
    assert.deepEqual(call.body, { ticket: "t🦈" });
  });

  Deno.test(`${name}: a non-2xx answer has its status and headers, no body; a redirect is not followed`, async () => {
    await using service = new TestService({
      "/limited": () => new Response("slow down", { status: 429, headers: { "retry-after": "2" } }),
      "/moved": () => new Response(null, { status: 302, headers: { location: "/elsewhere" } }),
    });
    const http = create();
    const limited = await http.post(request(service.url("/limited")));
    const moved = await http.post(request(service.url("/moved")));
    http.close();
    assert.deepEqual([limited.status, limited.header("retry-after"), limited.body], [429, "2", ""]);
    assert.deepEqual([moved.status, moved.header("location")], [302, "/elsewhere"]);
    assert.deepEqual(service.paths(), ["/limited", "/moved"]);
  });

  Deno.test(`${name}: chunked and connection-delimited replies are read; one over the limit fails`, async () => {
    using chunked = rawService(() =>
      'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\n{"a":1\r\n1\r\n}\r\n0\r\n\r\n'
    );
    using delimited = rawService(() => 'HTTP/1.1 200 OK\r\n\r\n{"b":2}', () => true);
    using huge = rawService(() =>
      `HTTP/1.1 200 OK\r\ncontent-length: 2000\r\n\r\n${"x".repeat(2000)}`
    );
    const http = create();
    assert.equal((await http.post(request(chunked.url))).body, '{"a":1}');
    assert.equal((await http.post(request(delimited.url))).body, '{"b":2}');
    await assert.rejects(http.post(request(huge.url)));
    http.close();
  });

  Deno.test(`${name}: a try without an answer fails with a TimeoutError at its timeout`, async () => {
    using silent = rawService(() => null);
    const http = create();
    const started = performance.now();
    await assert.rejects(http.post(request(silent.url, { timeoutMs: 300 })), {
      name: "TimeoutError",
    });
    const took = performance.now() - started;
    http.close();
    assert.ok(took >= 290 && took < 1000, `timed out after ${took} ms`);
  });

  Deno.test(`${name}: connections are kept alive and reused; close ends the tries in flight at once`, async () => {
    using service = rawService((n) => n < 3 ? OK : null);
    const http = create();
    for (let i = 0; i < 3; i++) assert.equal((await http.post(request(service.url))).status, 200);
    assert.equal(service.accepted, 1, "one connection for three tries");
    const hanging = http.post(request(service.url, { timeoutMs: 10_000 }));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const started = performance.now();
    http.close();
    await assert.rejects(hanging);
    assert.ok(performance.now() - started < 500);
    await assert.rejects(http.post(request(service.url)), "a closed client sends nothing");
  });
}

Deno.test("net: a kept-alive connection the service closed unanswered is replaced, not a failed try", async () => {
  // Each connection answers its first request, then closes on the second without a word:
  // what a service that drops idle connections looks like when the drop crosses the request.
  using service = rawService((n) => n === 0 ? OK : null, (n) => n === 1);
  const http = new NetCallbackHttp();
  assert.equal((await http.post(request(service.url))).status, 200);
  assert.equal((await http.post(request(service.url))).status, 200);
  http.close();
  assert.equal(service.accepted, 2);
});

Deno.test("net: a service that cuts the answer short is a failed try, never sent again", async () => {
  using service = rawService(() => "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{}", () => true);
  const http = new NetCallbackHttp();
  await assert.rejects(http.post(request(service.url)));
  http.close();
  assert.equal(service.accepted, 1);
});

Deno.test("the CLI uses the node:net client unless a proxy is configured for fetch", () => {
  assert.ok(callbackHttpFor(() => undefined) instanceof NetCallbackHttp);
  const proxied = callbackHttpFor((name) =>
    name === "HTTP_PROXY" ? "http://proxy:3128" : undefined
  );
  assert.ok(proxied instanceof FetchCallbackHttp);
});
