/**
 * Builds the browser bundle of the client SDK: `dist/shark-client.js`, one
 * minified ES module for `<script type="module">`, from `client/mod.ts` with
 * `deno bundle`. `deno task bundle`; a test fails when the committed file is
 * stale. (TypeScript users import `client/mod.ts` itself, `@shark/shark/client`,
 * which carries the types.)
 *
 * @module
 */
import denoJson from "../deno.json" with { type: "json" };

const ROOT = new URL("../", import.meta.url);

/** The client SDK's front door, what the bundle is built from. */
const ENTRY = "client/mod.ts";

/** Where the committed bundle lives. */
export const BUNDLE_FILE: URL = new URL("dist/shark-client.js", ROOT);

/** Bundles `client/mod.ts` in a temporary directory and returns the text `deno task bundle` writes. */
export async function buildBundle(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "shark-bundle-" });
  try {
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args: [
        "bundle",
        "--quiet",
        "--minify",
        "--platform=browser",
        "--format=esm",
        `--output=${dir}/client.js`,
        ENTRY,
      ],
      cwd: ROOT,
      stdout: "null",
      stderr: "piped",
    }).output();
    if (code !== 0) throw new Error(`deno bundle failed: ${new TextDecoder().decode(stderr)}`);
    const banner =
      `// Shark client ${denoJson.version}: built from ${ENTRY} by \`deno task bundle\`; do not edit.\n`;
    return banner + await Deno.readTextFile(`${dir}/client.js`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const bundle = await buildBundle();
  await Deno.mkdir(new URL("dist/", ROOT), { recursive: true });
  await Deno.writeTextFile(BUNDLE_FILE, bundle);
  console.log(`wrote ${BUNDLE_FILE.pathname} (${bundle.length} bytes)`);
}
