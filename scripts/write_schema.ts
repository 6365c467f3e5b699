/**
 * Writes `shark.schema.json` from the configuration's zod schema, so the
 * published JSON Schema can never drift from what Shark validates.
 * `deno task schema`; a test fails when the committed file is stale.
 *
 * @module
 */
import { configJsonSchema } from "../src/config/config.ts";

const target = new URL("../shark.schema.json", import.meta.url);
await Deno.writeTextFile(target, JSON.stringify(configJsonSchema(), null, 2) + "\n");
console.log(`wrote ${target.pathname}`);
