/**
 * The client SDK as shipped: `dist/shark-client.js` is what
 * `deno task bundle` builds from `client.ts` now, the bundle is small and
 * works as an ES module against a real Shark, and `client.ts` depends on
 * nothing but the protocol constants (a module without imports), so that it
 * runs in browsers, Deno, Node and Bun alike.
 */
import assert from "node:assert/strict";
import { buildBundle, BUNDLE_FILE } from "../scripts/bundle.ts";
import { AppService } from "./helpers/client_app.ts";
import { TestShark } from "./helpers/shark.ts";

Deno.test("dist/shark-client.js is what `deno task bundle` builds from client.ts now", async () => {
  assert.equal(
    await Deno.readTextFile(BUNDLE_FILE),
    await buildBundle(),
    "dist/shark-client.js is stale: run deno task bundle",
  );
});

Deno.test("the bundle stays under 5 kB minified and gzipped", async () => {
  const bytes = await Deno.readFile(BUNDLE_FILE);
  const gzipped = await new Response(
    new Blob([bytes]).stream().pipeThrough(new CompressionStream("gzip")),
  ).arrayBuffer();
  assert.ok(gzipped.byteLength < 5 * 1024, `${gzipped.byteLength} bytes gzipped`);
});

Deno.test("client.ts imports only src/protocol.ts, and that module imports nothing", async () => {
  const { stdout, code } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "client.ts"],
    cwd: new URL("../", import.meta.url),
    stderr: "null",
  }).output();
  assert.equal(code, 0);
  const graph = JSON.parse(new TextDecoder().decode(stdout)) as {
    modules: { specifier: string; dependencies?: unknown[] }[];
  };
  const specifiers = graph.modules.map((module) => module.specifier);
  assert.equal(specifiers.length, 2, specifiers.join(", "));
  const protocol = graph.modules.find((module) => module.specifier.endsWith("/src/protocol.ts"));
  assert.ok(protocol, "src/protocol.ts is the dependency");
  assert.equal(protocol.dependencies?.length ?? 0, 0);
});

Deno.test("the bundle works as an ES module: connect, authenticate, subscribe, request", async () => {
  const { SharkClient } = await import(BUNDLE_FILE.href);
  await using app = new AppService();
  app.answer("/before_subscribe", { status: "ok", data: { from: "bundle" } });
  app.answer("/on_message", ({ body }) => ({ status: "ok", data: body.data }));
  await using node = await TestShark.start({
    authentication: app.authentication,
    services: {
      books: { before_subscribe: app.url("/before_subscribe"), on_message: app.url("/on_message") },
    },
  });
  const client = new SharkClient(node.wsUrl, { auth: () => app.issue() });
  try {
    const book = client.subscribe("books.b1");
    assert.deepEqual((await book.ready).data, { from: "bundle" });
    assert.equal(await book.request("echo"), "echo");
  } finally {
    await client.close();
  }
});
