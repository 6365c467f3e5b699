/**
 * SPEC sections 6 and 7 (CLI): `shark.json` validation with key paths and
 * exit code 2, secrets from the environment, `SHARK_CONFIG`, CLI overrides,
 * `--check`, `--help`, `--version`, the shipped schema and example.
 */
import assert from "node:assert/strict";
import { configJsonSchema, loadConfig } from "../mod.ts";
import denoJson from "../deno.json" with { type: "json" };
import { TestClient } from "./helpers/client.ts";
import { ROOT, runMain, SharkProcess } from "./helpers/process.ts";
import { tempFile } from "./helpers/temp.ts";
import { problems } from "./helpers/config.ts";

Deno.test("defaults are the ones SPEC section 6 lists", () => {
  const config = loadConfig({});
  assert.deepEqual(config.server, {
    host: "127.0.0.1",
    port: 9000,
    tls: null,
    allowed_origins: null,
    max_connections: null,
    max_connections_per_address: null,
    max_memory_bytes: null,
    max_message_bytes: 65536,
    max_subscriptions: 1000,
    idle_timeout: null,
    max_fanout_queue_bytes: 16777216,
    max_buffered_bytes: 4194304,
    handshake_timeout: 10,
    catch_up_sessions: 128,
    shutdown_timeout: 30,
    transport: "shark",
  });
  assert.deepEqual(config.ws_ping, { interval: 15, timeout: 15 });
  assert.equal(config.pubsub.adapter, "memory");
  assert.equal(config.pubsub.redis.url, "redis://127.0.0.1:6379/0");
  assert.deepEqual(config.http, {
    timeout: 15,
    tries: 3,
    wait: 3,
    max_concurrent: 64,
    rate_limit_reset_header_names: ["X-Rate-Limit-Reset"],
  });
  assert.deepEqual(config.authentication, {});
  assert.deepEqual(config.delivery, { metadata: true, max_keys_per_subscription: 1000 });
  assert.deepEqual(config.publish_api, { secret: null });
  assert.deepEqual(config.log, { level: "info", format: "json" });
  const books = loadConfig({ services: { books: {} } }).services.books;
  assert.equal(books.require_authentication, true);
  assert.equal(books.authorizer, null);
  assert.deepEqual(books.extra_fields, []);
  assert.equal(books.authorization_renewal_jitter, 0);
});

Deno.test("invalid configurations are rejected with the key path of every problem", () => {
  assert.deepEqual(problems({ server: { port: "9000", bogus: true } }), [
    "server.port: Invalid input: expected number, received string",
    "server.bogus: unknown key",
  ]);
  assert.deepEqual(problems({ services: { books: { authorizer: "ftp://x/y" } } }), [
    'services.books.authorizer: expected an http:// or https:// URL, got "ftp://x/y"',
  ]);
  assert.deepEqual(problems({ pubsub: { redis: { url: "http://127.0.0.1:6379" } } }), [
    'pubsub.redis.url: expected a redis:// or rediss:// URL, got "http://127.0.0.1:6379"',
  ]);
  assert.deepEqual(problems({ pubsub: { redis: { url: "redis://:pw@127.0.0.1:6379/books" } } }), [
    'pubsub.redis.url: the database "books" is not a number, got "redis://:*****@127.0.0.1:6379/books"',
  ]);
  assert.match(problems({ services: { "a.b": {} } })[0], /^services\["a.b"\]: .*no '.'/);
  assert.match(problems({ http: { tries: 0 } })[0], /^http\.tries: /);
  assert.match(problems({ pubsub: { adapter: "kafka" } })[0], /^pubsub\.adapter: /);
  assert.match(problems({ log: { level: "loud" } })[0], /^log\.level: /);
  assert.match(problems([])[0], /^\(top level\): /);
});

Deno.test("a duration past what a timer can wait (2^31 - 1 ms, ~24.8 days) is rejected at load, naming the key", () => {
  const month = 30 * 24 * 3600;
  assert.match(
    problems({
      services: { books: { heartbeat_period: month, on_heartbeat: "http://a/" } },
    })[0],
    /^services\.books\.heartbeat_period: .*2147483/,
  );
  assert.match(problems({ http: { wait: month } })[0], /^http\.wait: /);
  assert.match(problems({ server: { shutdown_timeout: month } })[0], /^server\.shutdown_timeout: /);
  assert.equal(loadConfig({ http: { timeout: 2147483 } }).http.timeout, 2147483);
});

Deno.test("publish_api.secret shorter than 16 characters, empty included, is rejected at load", () => {
  for (const secret of ["", "s", "fifteen-chars-x"]) {
    assert.match(
      problems({ publish_api: { secret } })[0],
      /^publish_api\.secret: must be at least 16 characters/,
      JSON.stringify(secret),
    );
  }
  assert.match(
    problems({ publish_api: { secret: { env: "SHORT" } } }, { SHORT: "short" })[0],
    /^publish_api\.secret: must be at least 16 characters/,
  );
  assert.equal(
    loadConfig({ publish_api: { secret: "sixteen-chars-xx" } }).publish_api.secret,
    "sixteen-chars-xx",
  );
});

Deno.test("extra_fields may not name a key Shark writes into the subscription's frames: rejected at load, naming it", () => {
  const extra = (fields: string[], service: Record<string, unknown> = {}) =>
    problems({ services: { books: { extra_fields: fields, ...service } } });
  const always = ["event", "status", "error", "data", "subscription"];
  const metadata = ["published_at", "received_at", "sent_at", "queue_size"];
  for (const key of [...always, ...metadata]) {
    assert.deepEqual(extra(["author_id", key]), [
      `services.books.extra_fields: "${key}" is a key Shark writes into the subscription's frames`,
    ]);
  }
  const history = { history: { size: 10, ttl: 60 } };
  for (const key of ["offset", "epoch", "recovered", "recover"]) {
    assert.match(
      extra([key], history)[0],
      new RegExp(`^services\\.books\\.extra_fields: "${key}"`),
    );
    assert.deepEqual(
      loadConfig({ services: { books: { extra_fields: [key] } } }).services.books
        .extra_fields,
      [key],
      `${key} is free without history`,
    );
  }
});

Deno.test("a callback URL whose user name or password is not valid percent-encoding is rejected at load", () => {
  assert.deepEqual(problems({ services: { books: { authorizer: "http://svc:50%ZZoff@a/" } } }), [
    'services.books.authorizer: the user name or password is not valid percent-encoding, got "http://*****:*****@a/"',
  ]);
  assert.match(
    problems({ authentication: { ticket: { validation_url: "http://%E0%A4%A@a/" } } })[0],
    /^authentication\.ticket\.validation_url: the user name or password/,
  );
  assert.equal(
    loadConfig({ services: { books: { authorizer: "http://svc:50%25off@a/" } } }).services.books
      .authorizer,
    "http://svc:50%25off@a/",
  );
});

Deno.test("contradictions are rejected with the key path", () => {
  const service = (fields: Record<string, unknown>) => problems({ services: { books: fields } });
  assert.match(
    service({ authorization_renewal_period: 60 })[0],
    /authorization_renewal_period: needs an authorizer/,
  );
  assert.match(
    service({
      authorizer: "http://a/",
      authorization_renewal_period: 10,
      authorization_renewal_jitter: 10,
    })[0],
    /authorization_renewal_jitter: must be less/,
  );
  // The missing half is named.
  assert.match(service({ heartbeat_period: 5 })[0], /services\.books\.on_heartbeat: .* together/);
  assert.match(
    service({ on_heartbeat: "http://a/" })[0],
    /services\.books\.heartbeat_period: .* together/,
  );
  assert.match(
    service({ authorizer_fields: ["role"] })[0],
    /authorizer_fields: needs an authorizer/,
  );
  assert.match(
    problems({ pubsub: { redis_alt: { url: "redis://127.0.0.1:6380" } } })[0],
    /^pubsub\.redis_alt: is only used with the redis adapter/,
  );
  assert.match(
    problems({ server: { port: 9000 }, metrics: { prometheus: { port: 9000 } } })[0],
    /^metrics\.prometheus\.port: must differ/,
  );
});

Deno.test('secrets given as {"env": NAME} are read from the environment; a missing one names key and variable', () => {
  const config = loadConfig(
    {
      publish_api: { secret: { env: "PUBLISH_SECRET" } },
      pubsub: { redis: { url: { env: "REDIS_URL" } } },
      authentication: { ticket: { validation_url: { env: "TICKET_URL" } } },
      services: { books: { authorizer: { env: "AUTHORIZER_URL" } } },
    },
    (name) =>
      ({
        PUBLISH_SECRET: "s3cret-from-the-environment",
        REDIS_URL: "redis://10.0.0.1:6379/2",
        TICKET_URL: "http://auth/ticket",
        AUTHORIZER_URL: "http://auth/authorize",
      })[name],
  );
  assert.equal(config.publish_api.secret, "s3cret-from-the-environment");
  assert.equal(config.pubsub.redis.url, "redis://10.0.0.1:6379/2");
  assert.equal(config.authentication.ticket?.validation_url, "http://auth/ticket");
  assert.equal(config.services.books.authorizer, "http://auth/authorize");
  assert.deepEqual(problems({ publish_api: { secret: { env: "NOT_SET" } } }), [
    "publish_api.secret: environment variable NOT_SET is not set",
  ]);
  assert.deepEqual(problems({ pubsub: { redis: { url: { env: "BAD" } } } }, { BAD: "nope" }), [
    'pubsub.redis.url: expected a redis:// or rediss:// URL, got "nope"',
  ]);
});

Deno.test("a bad URL's password is redacted in the error", () => {
  const [problem] = problems({ services: { books: { on_message: "ftp://user:hunter2@host/" } } });
  assert.ok(!problem.includes("hunter2"), problem);
});

Deno.test("--check on a broken config exits 2 naming the key; on a valid one exits 0", async (t) => {
  await t.step("every invalid key is named", async () => {
    await using config = await tempFile({
      server: { port: -1 },
      services: { books: { extra_field: [] } },
    });
    const { code, stderr } = await runMain(["--config", config.path, "--check"]);
    assert.equal(code, 2);
    assert.match(stderr, /server\.port: /);
    assert.match(stderr, /services\.books\.extra_field: unknown key/);
  });
  await t.step("a file that is not JSON", async () => {
    await using config = await tempFile("{ not json");
    const { code, stderr } = await runMain(["--config", config.path, "--check"]);
    assert.equal(code, 2);
    assert.match(stderr, /is not valid JSON/);
  });
  await t.step("a file that is not there", async () => {
    const missing = await runMain(["--config", "/nonexistent/shark.json", "--check"]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read --config/);
  });
  await t.step("a valid file: exit 0", async () => {
    const valid = await runMain(["--config", `${ROOT}shark.example.json`, "--check"], {
      SHARK_REDIS_URL: "redis://127.0.0.1:6379/0",
      SHARK_PUBLISH_SECRET: "publish-secret-for-tests",
      SHARK_BOOKS_HEARTBEAT_URL: "http://books.internal/heartbeat",
    });
    assert.equal(valid.code, 0, valid.stderr);
    assert.match(valid.stdout, /configuration is valid/);
  });
});

Deno.test("an invalid config at start exits 2 with the key path, before listening", async () => {
  await using config = await tempFile({ ws_ping: { interval: "often" } });
  const { code, stderr } = await runMain(["--config", config.path]);
  assert.equal(code, 2);
  assert.match(stderr, /ws_ping\.interval: /);
});

Deno.test("--help, --version, and an unknown flag (exit 2)", async (t) => {
  await t.step("--help lists every flag", async () => {
    const help = await runMain(["--help"]);
    assert.equal(help.code, 0);
    for (
      const flag of [
        "--config",
        "--host",
        "--port",
        "--adapter",
        "--redis-url",
        "--log-level",
        "--workers",
        "--check",
      ]
    ) {
      assert.ok(help.stdout.includes(flag), `--help mentions ${flag}`);
    }
  });
  await t.step("--version prints the version", async () => {
    const version = await runMain(["--version"]);
    assert.equal(version.code, 0);
    assert.ok(version.stdout.includes(denoJson.version));
  });
  await t.step("an unknown flag or a bad value: exit 2 naming it", async () => {
    const unknown = await runMain(["--colour", "blue"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /colour/);
    const badPort = await runMain(["--port", "high", "--check"]);
    assert.equal(badPort.code, 2);
    assert.match(badPort.stderr, /--port/);
  });
});

Deno.test("without --config Shark runs on embedded defaults and says so first", async () => {
  await using shark = SharkProcess.spawn(["--port", "0"]);
  const port = await shark.listeningPort();
  const [first] = shark.logs();
  assert.match(String(first.message), /embedded defaults/);
  const health = await fetch(`http://127.0.0.1:${port}/healthz`);
  assert.equal(health.status, 200);
  assert.equal((await health.json()).adapter, "memory");
  assert.equal((await shark.stop()).code, 0);
});

Deno.test("SHARK_CONFIG is used without --config; --config wins over it; flags win over both", async (t) => {
  const secret = "from-env-config-secret";
  const env = {
    SHARK_CONFIG: JSON.stringify({
      server: { port: 1 },
      publish_api: { secret: { env: "SECRET_FOR_TEST" } },
      log: { level: "error" },
    }),
    SECRET_FOR_TEST: secret,
  };
  /** The status of a POST /publish with the secret of SHARK_CONFIG. */
  const publish = async (port: number, body: unknown) => {
    const response = await fetch(`http://127.0.0.1:${port}/publish`, {
      method: "POST",
      headers: { authorization: `Bearer ${secret}` },
      body: JSON.stringify(body),
    });
    await response.body?.cancel();
    return response.status;
  };
  await t.step("SHARK_CONFIG alone, --port and --log-level overriding it", async () => {
    await using fromEnv = SharkProcess.spawn(["--port", "0", "--log-level", "info"], env);
    const port = await fromEnv.listeningPort();
    assert.equal(await publish(port, { subscription: "a.b", data: {} }), 200);
  });
  await t.step(
    "--config wins over SHARK_CONFIG: no publish secret there, so /publish is 404",
    async () => {
      await using config = await tempFile({ server: { port: 0 } });
      await using fromFile = SharkProcess.spawn(["--config", config.path], env);
      const port = await fromFile.listeningPort();
      assert.equal(await publish(port, {}), 404);
    },
  );
});

Deno.test("every session log line carries the session id", async () => {
  await using shark = SharkProcess.spawn(["--port", "0", "--log-level", "debug"]);
  const port = await shark.listeningPort();
  const client = await TestClient.connect(`ws://127.0.0.1:${port}/`);
  await client.request({ event: "ping" });
  await client.close();
  const closed = await shark.waitForLog((line) =>
    String(line.message).startsWith("connection closed")
  );
  const opened = shark.logs().find((line) => line.message === "connection opened")!;
  assert.ok(opened.properties?.session, "opened line has a session id");
  assert.equal(closed.properties?.session, opened.properties?.session);
});

Deno.test("shark.schema.json is generated from the schema Shark validates with", async () => {
  const committed = JSON.parse(await Deno.readTextFile(`${ROOT}shark.schema.json`));
  assert.deepEqual(committed, configJsonSchema(), "run `deno task schema` to regenerate it");
});

Deno.test("shark.example.json is valid and sets every option of the schema", async () => {
  const example = JSON.parse(await Deno.readTextFile(`${ROOT}shark.example.json`));
  const env: Record<string, string> = {
    SHARK_REDIS_URL: "redis://127.0.0.1/0",
    SHARK_PUBLISH_SECRET: "publish-secret-for-tests",
  };
  loadConfig(example, (name) => env[name] ?? "http://x/");
  const missing: string[] = [];
  // deno-lint-ignore no-explicit-any
  const walk = (schema: any, value: any, path: string) => {
    const objectSchema =
      schema.anyOf?.find((option: { type?: string }) => option.type === "object") ??
        schema;
    const properties = objectSchema.properties ?? {};
    const additional = objectSchema.additionalProperties;
    if (typeof additional === "object" && value && typeof value === "object") {
      for (const [key, child] of Object.entries(value)) walk(additional, child, `${path}.${key}`);
    }
    for (const [key, child] of Object.entries(properties)) {
      if (key === "$schema" || key === "env") continue;
      if (!value || typeof value !== "object" || !(key in value)) missing.push(`${path}.${key}`);
      else walk(child, value[key], `${path}.${key}`);
    }
  };
  walk(configJsonSchema(), example, "");
  assert.deepEqual(missing, []);
});

Deno.test("every key of shark.schema.json has a description", async () => {
  const schema = JSON.parse(await Deno.readTextFile(`${ROOT}shark.schema.json`));
  const undescribed: string[] = [];
  const keys: string[] = [];
  // deno-lint-ignore no-explicit-any
  const walk = (node: any, path: string) => {
    if (!node || typeof node !== "object") return;
    for (const option of node.anyOf ?? []) walk(option, path);
    walk(node.items, `${path}[]`);
    walk(node.additionalProperties, `${path}.*`);
    for (const [key, child] of Object.entries(node.properties ?? {})) {
      keys.push(`${path}.${key}`);
      // deno-lint-ignore no-explicit-any
      if (typeof (child as any).description !== "string") undescribed.push(`${path}.${key}`);
      walk(child, `${path}.${key}`);
    }
  };
  walk(schema, "");
  assert.ok(keys.length > 50, `only ${keys.length} keys found`);
  assert.deepEqual(undescribed, []);
});
