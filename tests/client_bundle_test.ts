/**
 * The client SDK as shipped: `dist/shark-client.js` is what
 * `deno task bundle` builds from `client/mod.ts` now, the bundle is small
 * and works as an ES module against a real Shark, and the SDK (`client/`,
 * and `client.ts` that re-exports it) depends on nothing but the protocol
 * constants (a module without imports), so that it runs in browsers, Deno,
 * Node and Bun alike.
 */
import assert from "node:assert/strict";
import { buildBundle, BUNDLE_FILE } from "../scripts/bundle.ts";
import { AppService } from "./helpers/client_app.ts";
import { TestShark } from "./helpers/shark.ts";

const ROOT = new URL("../", import.meta.url);

Deno.test("dist/shark-client.js is what `deno task bundle` builds from client/mod.ts now", async () => {
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

/** The modules `entry` reaches, relative to the repository, with their dependency counts. */
async function graphOf(entry: string): Promise<Map<string, number>> {
  const { stdout, code } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: ROOT,
    stderr: "null",
  }).output();
  assert.equal(code, 0);
  const graph = JSON.parse(new TextDecoder().decode(stdout)) as {
    modules: { specifier: string; dependencies?: unknown[] }[];
  };
  return new Map(graph.modules.map((module) => [
    module.specifier.startsWith(ROOT.href)
      ? module.specifier.slice(ROOT.href.length)
      : module.specifier,
    module.dependencies?.length ?? 0,
  ]));
}

for (const entry of ["client/mod.ts", "client.ts"]) {
  Deno.test(`${entry} reaches only client/ and src/protocol.ts, and that module imports nothing`, async () => {
    const graph = await graphOf(entry);
    const outside = [...graph.keys()].filter((module) =>
      !/^client\/[\w-]+\.ts$/.test(module) && module !== "client.ts" &&
      module !== "src/protocol.ts"
    );
    assert.deepEqual(outside, []);
    assert.equal(graph.get("src/protocol.ts"), 0, "src/protocol.ts is reached and imports nothing");
  });
}

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
