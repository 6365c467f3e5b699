/**
 * Presence and the server API across Shark processes (SPEC sections 12 and
 * 13): two real Shark processes on one real `redis-server`, their clients
 * seeing each other's members, joins and leaves exactly once; the members of
 * a node killed with SIGKILL removed by the other with their leaves within
 * 2 x ttl; a graceful shutdown sending its leaves; `POST /presence` and
 * `POST /disconnect` on one node reaching the sessions of the other.
 *
 * Skipped, with a loud warning, when `redis-server` is not installed.
 */
import assert from "node:assert/strict";
import type { SharkConfigInput } from "../mod.ts";
import { TestClient } from "./helpers/client.ts";
import { SharkProcess } from "./helpers/process.ts";
import { redisAvailable, RedisServer } from "./helpers/redis_server.ts";
import { TestService } from "./helpers/service.ts";
import { FAST_HTTP } from "./helpers/shark.ts";
import { tempFile } from "./helpers/temp.ts";
import { within } from "./helpers/wait.ts";

/** `Deno.test`; `Deno.test.ignore` (after a loud warning) without `redis-server`. */
const test: (name: string, fn: () => Promise<void>) => void = await redisAvailable()
  ? Deno.test
  : Deno.test.ignore;
const SECRET = "publish-secret-for-tests";
/** The smallest ttl the configuration takes: a killed node's members go within 2 x 5 s. */
const TTL = 5;

function config(redis: RedisServer, service: TestService, ping = 0.5): SharkConfigInput {
  return {
    server: { host: "127.0.0.1", port: 0 },
    http: FAST_HTTP,
    publish_api: { secret: SECRET },
    authentication: { ticket: { validation_url: service.url("/auth"), auth_fields: ["user_id"] } },
    pubsub: {
      adapter: "redis",
      channel_prefix: "shark:",
      redis: { url: redis.url(), ping_interval: ping, ping_timeout: 2 * ping },
    },
    services: {
      chat: {
        extra_fields: ["name"],
        presence: { fields: ["user_id", "name"], join_leave: true, ttl: TTL },
      },
    },
  };
}

/** One Shark process of a test, with the clients connected to it. */
interface Node {
  readonly process: SharkProcess;
  readonly port: number;
  /** Connects, authenticates as `user` and subscribes `chat.room` as `name`; returns it with its client id. */
  join(user: string, name: string): Promise<{ client: TestClient; id: string }>;
  /** POSTs `body` to this node's server API `path` and returns the status and JSON body. */
  post(path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }>;
}

/** A Redis server, an auth service and two Shark processes on them, all stopped after `fn`. */
async function withNodes(
  fn: (nodes: [Node, Node]) => Promise<void>,
  ping?: number,
): Promise<void> {
  await using redis = await RedisServer.start();
  await using service = new TestService({
    "/auth": (call) => ({ status: "ok", user_id: call.body.ticket }),
  });
  await using file = await tempFile(config(redis, service, ping));
  await using opened = new AsyncDisposableStack();
  const node = async (): Promise<Node> => {
    const process = opened.use(SharkProcess.spawn(["--config", file.path]));
    const port = await process.listeningPort();
    return {
      process,
      port,
      async join(user, name) {
        const client = opened.use(await TestClient.connect(`ws://127.0.0.1:${port}/`));
        await client.auth(user);
        const reply = await client.subscribe("chat.room", { name });
        assert.equal(typeof reply.client, "string", JSON.stringify(reply));
        return { client, id: reply.client as string };
      },
      async post(path, body) {
        const response = await fetch(`http://127.0.0.1:${port}${path}`, {
          method: "POST",
          headers: { authorization: `Bearer ${SECRET}`, "content-type": "application/json" },
          body: JSON.stringify(body),
        });
        return { status: response.status, body: await response.json() };
      },
    };
  };
  await fn(await Promise.all([node(), node()]));
}

function member(id: string, user: string, name: string) {
  return { client: id, user, info: { user_id: user, name } };
}

function byClient(members: unknown): unknown[] {
  return (members as { client: string }[]).toSorted((a, b) => a.client.localeCompare(b.client));
}

test("members of two nodes: each client's presence lists both nodes' members, and each sees the other's join and leave exactly once, never its own", () =>
  withNodes(async ([one, two]) => {
    const ann = await one.join("u1", "Ann");
    const bob = await two.join("u2", "Bob");
    assert.deepEqual(await ann.client.next(), {
      event: "join",
      subscription: "chat.room",
      member: member(bob.id, "u2", "Bob"),
      name: "Ann",
    });
    const bob2 = await two.join("u2", "Bob on a phone");
    for (const client of [ann.client, bob.client]) {
      const joined = await client.next();
      assert.equal(joined.event, "join");
      assert.deepEqual(joined.member, member(bob2.id, "u2", "Bob on a phone"));
    }
    for (const { client } of [ann, bob, bob2]) {
      const reply = await client.request({ event: "presence", subscription: "chat.room" });
      assert.equal(reply.status, "ok", JSON.stringify(reply));
      assert.deepEqual(
        byClient(reply.members),
        byClient([
          member(ann.id, "u1", "Ann"),
          member(bob.id, "u2", "Bob"),
          member(bob2.id, "u2", "Bob on a phone"),
        ]),
      );
      assert.equal(reply.clients, 3);
      assert.equal(reply.users, 2);
    }
    const unsubscribed = await bob.client.request({
      event: "unsubscribe",
      subscription: "chat.room",
    });
    assert.equal(unsubscribed.status, "ok");
    for (const client of [ann.client, bob2.client]) {
      const left = await client.next();
      assert.equal(left.event, "leave");
      assert.deepEqual(left.member, member(bob.id, "u2", "Bob"));
    }
    for (const { client } of [ann, bob, bob2]) await client.silence(300);
  }));

test("a node killed with SIGKILL: the other node removes its members within 2 x ttl, sending each leave once", () =>
  withNodes(async ([one, two]) => {
    const ann = await one.join("u1", "Ann");
    const bob = await two.join("u2", "Bob");
    const bob2 = await two.join("u3", "Cid");
    await ann.client.take(2);
    two.process.child.kill("SIGKILL");
    await two.process.exit();
    const killedAt = performance.now();
    const leaves = await ann.client.take(2, 2 * TTL * 1000);
    const seconds = (performance.now() - killedAt) / 1000;
    assert.ok(seconds < 2 * TTL, `leaves after ${seconds} s`);
    assert.deepEqual(leaves.map((leave) => leave.event), ["leave", "leave"]);
    assert.deepEqual(
      byClient(leaves.map((leave) => leave.member)),
      byClient([member(bob.id, "u2", "Bob"), member(bob2.id, "u3", "Cid")]),
    );
    await ann.client.silence(TTL * 1000 / 3 + 500);
    const reply = await ann.client.request({ event: "presence", subscription: "chat.room" });
    assert.deepEqual(reply.members, [member(ann.id, "u1", "Ann")]);
  }));

test("a graceful shutdown (SIGTERM) removes the node's members first: the other node's clients get their leaves at once, long before ttl", () =>
  withNodes(async ([one, two]) => {
    const ann = await one.join("u1", "Ann");
    const bob = await two.join("u2", "Bob");
    await ann.client.next();
    const stoppedAt = performance.now();
    const exit = await two.process.stop();
    assert.equal(exit.code, 0, exit.stderr);
    const left = await ann.client.next(TTL * 1000 / 2);
    assert.ok(performance.now() - stoppedAt < TTL * 1000 / 2);
    assert.deepEqual(left, {
      event: "leave",
      subscription: "chat.room",
      member: member(bob.id, "u2", "Bob"),
      name: "Ann",
    });
    await ann.client.silence(TTL * 1000 / 3 + 500);
  }));

test("POST /presence on one node lists the members of both", () =>
  withNodes(async ([one, two]) => {
    const ann = await one.join("u1", "Ann");
    const bob = await two.join("u2", "Bob");
    for (const node of [one, two]) {
      const { status, body } = await node.post("/presence", { subscription: "chat.room" });
      assert.equal(status, 200);
      assert.deepEqual({ ...body, members: byClient(body.members) }, {
        status: "ok",
        members: byClient([member(ann.id, "u1", "Ann"), member(bob.id, "u2", "Bob")]),
        clients: 2,
        users: 2,
      });
    }
  }));

test("POST /disconnect on one node reaches a session on the other: by client it closes with 4003, by match with reconnect with 4004; their leaves follow", () =>
  withNodes(async ([one, two]) => {
    const ann = await one.join("u1", "Ann");
    const bob = await two.join("u2", "Bob");
    const bob2 = await two.join("u3", "Cid");
    const cid = await two.join("u3", "Cid again");
    await ann.client.take(3);
    assert.deepEqual(await one.post("/disconnect", { client: bob.id }), {
      status: 200,
      body: { status: "ok" },
    });
    const closed = await within(bob.client.closed, 5000, "bob closed");
    assert.deepEqual([closed.code, closed.reason], [4003, "disconnected"]);
    const left = await ann.client.next(5000);
    assert.deepEqual([left.event, left.member], ["leave", member(bob.id, "u2", "Bob")]);
    assert.deepEqual(
      await one.post("/disconnect", { match: { user_id: "u3" }, reconnect: true }),
      { status: 200, body: { status: "ok" } },
    );
    for (const { client } of [bob2, cid]) {
      const closedToo = await within(client.closed, 5000, "u3 closed");
      assert.deepEqual([closedToo.code, closedToo.reason], [4004, "disconnected, reconnect"]);
    }
    const leaves = await ann.client.take(2, 5000);
    assert.deepEqual(
      byClient(leaves.map((leave) => leave.member)),
      byClient([member(bob2.id, "u3", "Cid"), member(cid.id, "u3", "Cid again")]),
    );
    await ann.client.silence(300);
    const reply = await ann.client.request({ event: "presence", subscription: "chat.room" });
    assert.deepEqual(reply.members, [member(ann.id, "u1", "Ann")]);
  }));

test("a node frozen past ttl (SIGSTOP) is taken for dead, its members leave; woken, its next refresh adds them again with their joins", () =>
  withNodes(async ([one, two]) => {
    const ann = await one.join("u1", "Ann");
    const bob = await two.join("u2", "Bob");
    await ann.client.take(1);
    Deno.kill(two.process.child.pid, "SIGSTOP");
    try {
      const [left] = await ann.client.take(1, 2 * TTL * 1000);
      assert.equal(left.event, "leave");
      assert.deepEqual(left.member, member(bob.id, "u2", "Bob"));
    } finally {
      Deno.kill(two.process.child.pid, "SIGCONT");
    }
    // Bob's connection lived on (the node's Redis pings are 10 s apart here): he is a member again.
    const [joined] = await ann.client.take(1, TTL * 1000);
    assert.equal(joined.event, "join");
    assert.deepEqual(joined.member, member(bob.id, "u2", "Bob"));
    const reply = await ann.client.request({ event: "presence", subscription: "chat.room" });
    assert.deepEqual(
      byClient(reply.members),
      byClient([member(ann.id, "u1", "Ann"), member(bob.id, "u2", "Bob")]),
    );
  }, 10));
