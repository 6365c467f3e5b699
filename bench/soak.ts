/**
 * `deno task soak -- --minutes N [--rate 10000] [--churn 20] [--max-keys 100]
 * [--transport shark|deno]`: Shark (`main.ts`, Redis adapter) fanning out `--rate` deliveries a second for N
 * minutes while `--churn` clients a second connect, authenticate, subscribe
 * (authorizer, `before_subscribe`, a topic of their own with history) and go
 * away again, half of them unsubscribing first, half just closing. Published
 * envelopes carry an `order` with an `order_key` drawn from 40 times
 * `--max-keys` (`delivery.max_keys_per_subscription`), 4 times as many per
 * topic, so that every subscription keeps forgetting keys; one in ten goes
 * through `POST /publish`.
 *
 * Reports Shark's resident memory over time and compares the end with the
 * first minute (or the first fifth of a shorter run): flat is the bar, within
 * 10 %. Also counts what the steady subscribers missed.
 *
 * @module
 */
import { encodeCommand, RespConnection } from "./_resp.ts";
import { FaultyService, jsonReply } from "./_faulty_service.ts";
import {
  becomes,
  delay,
  harnessArgs,
  log,
  report,
  runHarness,
  SharkProcess,
  startRedis,
  WsClient,
} from "./_harness.ts";

const PUBLISH_SECRET = "soak-publish-secret";
/** Steady subscribers, each on every topic. */
const SUBSCRIBERS = 100;
const TOPICS = 10;

/** A steady client: authenticated, subscribed to every `feed.N` topic, counting. */
async function steadyClient(shark: SharkProcess, index: number) {
  const client = await WsClient.connect(shark.wsUrl);
  await client.request({ event: "auth", ticket: `steady-${index}` });
  for (let topic = 0; topic < TOPICS; topic++) {
    const reply = await client.request({ event: "subscribe", subscription: `feed.${topic}` });
    if (reply.status !== "ok") throw new Error(`subscribe failed: ${JSON.stringify(reply)}`);
  }
  const counter = { client, received: 0 };
  client.onMessage = () => counter.received++;
  return counter;
}

/** One churning client's life: 1–3 s subscribed, then gone. */
async function churnOnce(shark: SharkProcess, id: number, counts: Record<string, number>) {
  let client: WsClient;
  try {
    client = await WsClient.connect(shark.wsUrl);
  } catch {
    counts.connect_failed++;
    return;
  }
  try {
    await client.request({ event: "auth", ticket: `churn-${id}` });
    const feed = `feed.${id % TOPICS}`;
    const own = `hist.churn-${id}`;
    for (const subscription of [feed, own]) {
      const reply = await client.request({ event: "subscribe", subscription });
      if (reply.status !== "ok") counts.subscribe_failed++;
    }
    await delay(1000 + (id % 3) * 1000);
    if (id % 2 === 0) {
      await client.request({ event: "unsubscribe", subscription: feed });
      await client.request({ event: "unsubscribe", subscription: own });
    }
    counts.churned++;
  } catch {
    counts.churn_errors++;
  } finally {
    client.close();
  }
}

/** Seconds a paced loop may fall behind before it gives up catching up. */
const MAX_LAG_S = 1;

/**
 * Paces a loop at `perSecond`. A loop that fell more than {@link MAX_LAG_S}
 * behind (the machine stalled) starts afresh from now instead of bursting to
 * catch up: a burst of publishes in flight at once could reach Shark out of
 * order, and a burst of connects would measure the burst.
 */
class Pacer {
  #due: number;
  readonly #intervalMs: number;
  /** Times the loop fell behind and started afresh. */
  slips = 0;

  constructor(start: number, perSecond: number) {
    this.#due = start;
    this.#intervalMs = 1000 / perSecond;
  }

  /** Waits until the next turn is due. */
  async next(): Promise<void> {
    this.#due += this.#intervalMs;
    const wait = this.#due - performance.now();
    if (wait > 0) return await delay(wait);
    if (wait < -MAX_LAG_S * 1000) {
      this.slips++;
      this.#due = performance.now();
    }
  }
}

async function main(directory: string): Promise<number> {
  const { values } = harnessArgs({
    minutes: { type: "string", default: "1" },
    rate: { type: "string", default: "10000" },
    churn: { type: "string", default: "20" },
    "max-keys": { type: "string", default: "100" },
  });
  const seconds = Number(values.minutes) * 60;
  const rate = Number(values.rate);
  const churn = Number(values.churn);
  const maxKeys = Number(values["max-keys"]);
  const publishesPerSecond = rate / SUBSCRIBERS;
  const sampleEvery = Math.min(10, seconds / 6);
  const baselineAt = Math.min(60, seconds / 5);
  log(
    `soak: ${seconds} s, ${rate} deliveries/s (${publishesPerSecond} publishes/s), ${churn} connects/s`,
  );
  const redis = await startRedis();
  const service = FaultyService.start(({ path, body }) =>
    path === "/ticket"
      ? jsonReply({ status: "ok", user_id: JSON.parse(body).ticket })
      : jsonReply({ status: "ok" })
  );
  const callbacks = Object.fromEntries(
    ["authorizer", "before_subscribe", "on_subscribe", "before_unsubscribe", "on_unsubscribe"]
      .map((name) => [name, service.url(`/${name}`)]),
  );
  const shark = await SharkProcess.start(
    {
      pubsub: { adapter: "redis", redis: { url: redis.url() } },
      authentication: {
        ticket: { validation_url: service.url("/ticket"), auth_fields: ["user_id"] },
      },
      services: {
        feed: { ...callbacks },
        hist: { require_authentication: false, history: { size: 50, ttl: 30 } },
      },
      delivery: { max_keys_per_subscription: maxKeys },
      publish_api: { secret: PUBLISH_SECRET },
      log: { level: "warning" },
    },
    directory,
    values.transport,
  );
  const steady = await Promise.all(
    Array.from({ length: SUBSCRIBERS }, (_, i) => steadyClient(shark, i)),
  );
  log(`${steady.length} steady clients subscribed`);
  const publisher = await RespConnection.connect(redis.port);
  const counts = { churned: 0, churn_errors: 0, connect_failed: 0, subscribe_failed: 0 };
  const started = performance.now();
  const until = started + seconds * 1000;
  const samples: { s: number; rss_mib: number }[] = [];
  const sample = () => {
    const s = Math.round((performance.now() - started) / 1000);
    samples.push({ s, rss_mib: Math.round(shark.rssMiB() * 10) / 10 });
    log(`t=${s}s rss ${samples.at(-1)!.rss_mib} MiB`);
  };
  sample();
  const sampler = setInterval(sample, sampleEvery * 1000);
  let published = 0;
  let httpFailures = 0;
  const pacing = {
    publishes: new Pacer(started, publishesPerSecond),
    churn: new Pacer(started, churn),
  };
  const publishing = (async () => {
    while (performance.now() < until) {
      const topic = `feed.${published % TOPICS}`;
      const envelope = {
        subscription: topic,
        data: { n: published, text: "soak" },
        options: { order: published, order_key: `k${published % (maxKeys * TOPICS * 4)}` },
      };
      if (published % 10 === 0) {
        fetch(`http://127.0.0.1:${shark.port}/publish`, {
          method: "POST",
          headers: { authorization: `Bearer ${PUBLISH_SECRET}` },
          body: JSON.stringify(envelope),
        }).then((response) => {
          if (!response.ok) httpFailures++;
          return response.body?.cancel();
        }).catch(() => httpFailures++);
      } else {
        publisher.send(encodeCommand(["PUBLISH", topic, JSON.stringify(envelope)]), 1)
          .catch(() => {});
      }
      published++;
      await pacing.publishes.next();
    }
  })();
  const churning = (async () => {
    const lives: Promise<void>[] = [];
    for (let id = 0; performance.now() < until; id++) {
      lives.push(churnOnce(shark, id, counts));
      await pacing.churn.next();
    }
    await Promise.all(lives);
  })();
  await Promise.all([publishing, churning]);
  // Every steady client is on every topic: each publish is one delivery to each.
  const expected = published * SUBSCRIBERS;
  await becomes(() => steady.reduce((sum, c) => sum + c.received, 0) >= expected, 5000);
  clearInterval(sampler);
  sample();
  const received = steady.reduce((sum, counter) => sum + counter.received, 0);
  const metrics = await shark.metrics();
  for (const { client } of steady) client.close();
  publisher.close();
  const stopped = await shark.terminate(30_000);
  service.down();
  await redis.stop();
  const baseline = samples.find((entry) => entry.s >= baselineAt) ?? samples[0];
  const end = samples.at(-1)!;
  const ratio = end.rss_mib / baseline.rss_mib;
  const flat = ratio <= 1.1;
  report("soak", {
    seconds,
    deliveries_per_s: rate,
    churn_per_s: churn,
    published,
    http_publish_failures: httpFailures,
    steady_expected: expected,
    steady_received: received,
    steady_lost: expected - received,
    ...counts,
    delivered_total: metrics["shark_messages_delivered_total"] ?? 0,
    keys_forgotten: metrics['shark_limited_total{limit="order_keys"}'] ?? 0,
    schedule_slips: pacing.publishes.slips + pacing.churn.slips,
    rss_baseline_s: baseline.s,
    rss_baseline_mib: baseline.rss_mib,
    rss_end_mib: end.rss_mib,
    rss_end_over_baseline: ratio,
    rss_flat: flat,
    shark_exit_code: stopped.exit.code,
  });
  const outcomes = Object.fromEntries(
    Object.entries(metrics).filter(([name]) => /_(closed|dropped|rejected)_total/.test(name)),
  );
  console.log(JSON.stringify({ soak_rss: samples, soak_outcomes: outcomes }));
  const clean = flat && expected === received && stopped.exit.code === 0 && httpFailures === 0 &&
    counts.churn_errors === 0;
  return clean ? 0 : 1;
}

if (import.meta.main) runHarness(main);
