/**
 * History and recovery (SPEC section 10) end to end: the `history` key of a
 * service, and its refusal on the broadcast_channel adapter at start.
 */
import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "../mod.ts";
import { runMain } from "./helpers/process.ts";

function problems(config: unknown): readonly string[] {
  try {
    loadConfig(config);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.problems;
  }
  assert.fail("the configuration was accepted");
}

Deno.test("config: history defaults to null; size 1–10000 and ttl > 0, anything else names the key", () => {
  assert.equal(loadConfig({ services: { books: {} } }).services.books.history, null);
  const history = { size: 1, ttl: 0.5 };
  assert.deepEqual(
    loadConfig({ services: { books: { history } } }).services.books.history,
    history,
  );
  assert.deepEqual(
    loadConfig({ services: { books: { history: { size: 10000, ttl: 300 } } } }).services.books
      .history,
    { size: 10000, ttl: 300 },
  );
  const bad = [
    [{ size: 0, ttl: 1 }, "size"],
    [{ size: 10001, ttl: 1 }, "size"],
    [{ size: 1.5, ttl: 1 }, "size"],
    [{ ttl: 1 }, "size"],
    [{ size: 1, ttl: 0 }, "ttl"],
    [{ size: 1 }, "ttl"],
    [{ size: 1, ttl: 1, keep: true }, "keep"],
  ] as const;
  for (const [value, key] of bad) {
    const [problem] = problems({ services: { books: { history: value } } });
    assert.match(problem, new RegExp(`^services\\.books\\.history\\.${key}: `), problem);
  }
});

Deno.test("history on a service with the broadcast_channel adapter is rejected at start: exit 2 naming the key", async () => {
  const config = {
    pubsub: { adapter: "broadcast_channel" },
    services: { books: { history: { size: 10, ttl: 60 } }, news: {} },
  };
  const started = await runMain([], { SHARK_CONFIG: JSON.stringify(config) });
  assert.equal(started.code, 2);
  assert.match(
    started.stderr,
    /services\.books\.history: is not available with the broadcast_channel adapter/,
  );
  assert.doesNotMatch(started.stderr, /services\.news/);
  const overridden = await runMain(["--adapter", "broadcast_channel"], {
    SHARK_CONFIG: JSON.stringify({ services: config.services }),
  });
  assert.equal(overridden.code, 2);
  assert.match(overridden.stderr, /services\.books\.history: /);
});
