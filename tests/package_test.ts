/**
 * The JSR package holds what a program imports (every export of deno.json
 * and every module they reach, the engine and the adapters whole) and the
 * documents that describe it, never the tests, benchmarks, CLI or deployment
 * files. The file list is the one `deno publish --dry-run` prints.
 *
 * @module
 */
import assert from "node:assert/strict";
import { relative } from "node:path";
import { fileURLToPath } from "node:url";
import denoJson from "../deno.json" with { type: "json" };
import { ROOT } from "./helpers/process.ts";

async function run(args: string[]): Promise<string> {
  const output = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    stdin: "null",
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, text);
  return text;
}

/** Paths relative to the repository, as `deno publish --dry-run` lists them. */
async function publishedFiles(): Promise<Set<string>> {
  // Type checking and slow types are `deno task check`'s; this is about the list.
  const text = await run(["publish", "--dry-run", "--allow-dirty", "--no-check"]);
  const files = [...text.matchAll(/^\s+(file:\/\/\S+) \(/gm)].map((match) =>
    relative(ROOT, fileURLToPath(match[1]))
  );
  assert.ok(files.length > 0, text);
  return new Set(files);
}

/** Local modules reachable from `entry`, relative to the repository. */
async function localGraph(entry: string): Promise<string[]> {
  const info = JSON.parse(await run(["info", "--json", entry]));
  return (info.modules as { specifier: string }[])
    .filter((module) => module.specifier.startsWith("file:"))
    .map((module) => relative(ROOT, fileURLToPath(module.specifier)));
}

async function filesUnder(dir: string): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(`${ROOT}${dir}`)) {
    if (entry.isFile) files.push(`${dir}/${entry.name}`);
    else if (entry.isDirectory) files.push(...await filesUnder(`${dir}/${entry.name}`));
  }
  return files;
}

/** What may ship: the library, the client SDK (`client/`, `client.ts`), its documents and its schema. */
const SHIPPABLE =
  /^(mod\.ts|src\/.+|adapters\/.+|client\/[\w-]+\.ts|client[\w.-]*\.(ts|js)|docs\/[\w-]+\.md|README\.md|LICENSE[\w.]*|shark\.schema\.json|deno\.json)$/;

Deno.test("the package ships only the library, its documents and its schema", async () => {
  const files = await publishedFiles();
  const stray = [...files].filter((file) => !SHIPPABLE.test(file));
  assert.deepEqual(stray, [], "files that no user imports are published");
  for (const kept of ["README.md", "shark.schema.json", "docs/protocol.md"]) {
    assert.ok(files.has(kept), `${kept} is published`);
  }
});

Deno.test("the package ships every module its exports reach, and src/ and adapters/ whole", async () => {
  const files = await publishedFiles();
  const needed = new Set<string>();
  for (const entry of Object.values(denoJson.exports)) {
    for (const file of await localGraph(entry)) needed.add(file);
  }
  // Files read at run time rather than imported (a script an adapter loads) are there too.
  for (const dir of ["src", "adapters"]) {
    for (const file of await filesUnder(dir)) needed.add(file);
  }
  const missing = [...needed].filter((file) => !files.has(file));
  assert.deepEqual(missing, [], "files a user's program needs are not published");
});
