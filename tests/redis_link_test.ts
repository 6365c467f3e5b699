/**
 * The link to one Redis server (`adapters/redis_link.ts`) on a fake clock,
 * against a real `redis-server`: the PING deadline to the millisecond, the
 * grace a late deadline gets when this process (not Redis) was stalled, and
 * the reconnect backoff, which the adapter's tests only see in real time.
 * Redis is frozen with SIGSTOP, so that a PING really goes unanswered.
 *
 * Skipped, with a loud warning, when `redis-server` is not installed.
 */
import assert from "node:assert/strict";
import { configure, getLogger, type LogRecord, reset } from "@logtape/logtape";
import { RedisLink, type RedisLinkOwner } from "../adapters/redis_link.ts";
import { FakeClock } from "./helpers/clock.ts";
import { redisAvailable, RedisServer } from "./helpers/redis_server.ts";
import { delay, waitUntil } from "./helpers/wait.ts";

const ignore = !(await redisAvailable());
/** `Deno.test`; `Deno.test.ignore` (after a loud warning) without `redis-server`. */
const test: (name: string, fn: (t: Deno.TestContext) => Promise<void>) => void = ignore
  ? Deno.test.ignore
  : Deno.test;
const PING_INTERVAL_MS = 1000;
const PING_TIMEOUT_MS = 500;
const CATEGORY = ["shark-test", "redis-link"];

/** What a link reported to its owner. */
interface Recording {
  readonly lost: string[];
  restored: number;
  readonly messages: [string, string][];
}

/** A link on `clock` to `redis` that wants `topics`; disposing of it closes it. */
function linkTo(
  redis: RedisServer,
  clock: FakeClock,
  topics: string[] = [],
  random?: () => number,
) {
  const recording: Recording = { lost: [], restored: 0, messages: [] };
  const owner: RedisLinkOwner = {
    log: getLogger(CATEGORY),
    wanted: () => topics,
    message: (topic, payload) => recording.messages.push([topic, payload]),
    lost: (_, reason) => recording.lost.push(reason),
    restored: () => recording.restored++,
  };
  const link = new RedisLink({
    label: "redis",
    url: redis.url(),
    prefix: "p:",
    pingIntervalMs: PING_INTERVAL_MS,
    pingTimeoutMs: PING_TIMEOUT_MS,
    publishes: true,
    clock,
    random,
  }, owner);
  return { link: Object.assign(link, { [Symbol.asyncDispose]: () => link.close() }), recording };
}

/** Freezes `redis` (SIGSTOP) until the result is disposed of (SIGCONT): it accepts, never answers. */
function frozen(redis: RedisServer): Disposable {
  Deno.kill(redis.pid!, "SIGSTOP");
  return { [Symbol.dispose]: () => Deno.kill(redis.pid!, "SIGCONT") };
}

/** A link to `redis` whose first PING is out, unanswered: Redis is frozen until disposal. */
async function unansweredPing(redis: RedisServer) {
  const clock = new FakeClock();
  const { link, recording } = linkTo(redis, clock);
  await link.open();
  const freeze = frozen(redis);
  clock.tick(PING_INTERVAL_MS); // the PING goes out; its deadline is PING_TIMEOUT_MS away
  return {
    clock,
    recording,
    async [Symbol.asyncDispose]() {
      freeze[Symbol.dispose]();
      await link.close();
    },
  };
}

/** What the links logged since {@link logging} began: only failed reconnect attempts here. */
let logs: LogRecord[] = [];

/** Sends the links' logs to {@link logs} until the result is disposed of. */
async function logging(): Promise<AsyncDisposable> {
  logs = [];
  await configure({
    reset: true,
    sinks: { recorded: (record) => logs.push(record) },
    loggers: [
      { category: CATEGORY, sinks: ["recorded"], lowestLevel: "debug" },
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "warning" },
    ],
  });
  return { [Symbol.asyncDispose]: () => reset() };
}

test("link: a PING goes out ping_interval after connecting; unanswered for ping_timeout, the link is lost (not a millisecond before) and comes back with its topics", async () => {
  await using redis = await RedisServer.start();
  const clock = new FakeClock();
  const { link, recording } = linkTo(redis, clock, ["books.a"]);
  await using _ = link;
  await link.open();
  {
    using _frozen = frozen(redis);
    clock.tick(PING_INTERVAL_MS); // the PING goes out, and Redis is frozen
    clock.tick(PING_TIMEOUT_MS - 1);
    assert.deepEqual(recording.lost, []);
    assert.equal(link.up, true);
    clock.tick(1);
    assert.deepEqual(recording.lost, ["no PING reply within 0.5 s"]);
    assert.equal(link.up, false);
    await assert.rejects(link.publish("books.a", "x"), {
      message: `redis redis://127.0.0.1:${redis.port}/0 is down`,
    });
  }
  // The first reconnect waits 50 to 150 ms; then the wanted topic is subscribed again.
  clock.tick(150);
  await waitUntil(() => recording.restored === 1, 5000, "restored");
  assert.equal(link.up, true);
  assert.equal(await redis.numsub("p:books.a"), 1);
  await redis.publish("p:books.a", "after");
  await waitUntil(() => recording.messages.length === 1, 2000, "a message");
  assert.deepEqual(recording.messages, [["books.a", "after"]]);
});

test("link: a PING deadline that fires late (this process stalled, not Redis) gets twice its lateness as grace, three times at most", async (t) => {
  await using redis = await RedisServer.start();
  await t.step("a grace of twice the lateness, then the loss", async () => {
    await using pinged = await unansweredPing(redis);
    const { clock, recording } = pinged;
    clock.stall(PING_TIMEOUT_MS + 300);
    clock.tick(0); // the deadline runs 300 ms late: 600 ms more
    clock.tick(599);
    assert.deepEqual(recording.lost, []);
    clock.tick(1);
    assert.deepEqual(recording.lost, ["no PING reply within 0.5 s"]);
  });
  await t.step("a fourth late deadline is a loss", async () => {
    await using pinged = await unansweredPing(redis);
    const { clock, recording } = pinged;
    clock.stall(PING_TIMEOUT_MS);
    for (let graces = 0; graces < 3; graces++) {
      clock.stall(100); // each deadline 100 ms late: 200 ms of grace
      clock.tick(0);
      assert.deepEqual(recording.lost, [], `late deadline ${graces + 1} has grace`);
      clock.stall(200);
    }
    clock.stall(100);
    clock.tick(0);
    assert.deepEqual(recording.lost, ["no PING reply within 0.5 s"]);
  });
});

test("link: reconnect attempts wait 100 ms ± 50 %, then twice as long each time up to 5 s ± 50 %; every tenth failure is a warning", async () => {
  await using _logging = await logging();
  await using redis = await RedisServer.start();
  const clock = new FakeClock();
  const jitter = [0, 0.5, 0.75]; // exact in binary: the waits are whole milliseconds
  let draws = 0;
  const { link, recording } = linkTo(redis, clock, [], () => jitter[draws++ % jitter.length]);
  await using _ = link;
  await link.open();
  await redis.stop({ kill: true });
  await waitUntil(() => recording.lost.length === 1, 5000, "the loss");
  for (let attempt = 0; attempt <= 10; attempt++) {
    const base = Math.min(5000, 100 * 2 ** attempt);
    const wait = base * (0.5 + jitter[attempt % jitter.length]);
    clock.tick(wait - 1);
    await delay(30); // room for an attempt that should not have started
    assert.equal(logs.length, attempt, `attempt ${attempt + 1} not before ${wait} ms`);
    clock.tick(1);
    await waitUntil(() => logs.length === attempt + 1, 5000, `attempt ${attempt + 1}`);
    assert.equal(logs[attempt].level, attempt % 10 === 0 ? "warning" : "debug");
    assert.equal(logs[attempt].properties.attempt, attempt + 1);
  }
  await redis.restart();
  clock.tick(7500);
  await waitUntil(() => recording.restored === 1, 5000, "restored");
  assert.equal(link.up, true);
  assert.equal(recording.lost.length, 1);
});
