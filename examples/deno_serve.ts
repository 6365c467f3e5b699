/**
 * Shark as a `deno serve` module, for `deno serve --parallel` (one isolate
 * per core) and for hosts that run a default-exported `fetch` handler, such
 * as Deno Deploy. Configuration comes from `SHARK_CONFIG` (JSON text); the
 * adapter must cross isolates (broadcast_channel or redis).
 *
 * ```sh
 * SHARK_CONFIG='{"pubsub":{"adapter":"broadcast_channel"},"services":{"books":{"require_authentication":false}}}' \
 *   deno serve --parallel -A --port 9000 examples/deno_serve.ts
 * ```
 *
 * @module
 */
import { loadConfig, type PubSub, Shark } from "../mod.ts";

const config = loadConfig(
  JSON.parse(Deno.env.get("SHARK_CONFIG") ?? "{}"),
  (name) => Deno.env.get(name),
);
let pubsub: PubSub | undefined;
if (config.pubsub.adapter === "redis") {
  const { RedisPubSub } = await import("../adapters/redis.ts");
  pubsub = new RedisPubSub(config.pubsub);
}
const shark = new Shark(config, { pubsub });
await shark.started;

// Graceful shutdown in every isolate: clients get 1001, unsubscribe callbacks
// run, and the adapter (which keeps the isolate alive) is closed.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => shark.shutdown());
}

export default {
  fetch: (request) => shark.handle(request),
} satisfies Deno.ServeDefaultExport;
