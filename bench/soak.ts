/**
 * `deno task soak -- --minutes N [--warmup-minutes 5] [--rate 10000]
 * [--churn 20] [--max-keys 100] [--transport shark|deno] [--gc-trace FILE]`:
 * Shark (`main.ts`, Redis adapter) fanning out `--rate` deliveries a second
 * while `--churn` clients a second connect, authenticate, subscribe
 * (authorizer, `before_subscribe`, a topic of their own with history) and go
 * away again, half of them unsubscribing first, half just closing. Published
 * envelopes carry an `order` with an `order_key` drawn from 40 times
 * `--max-keys` (`delivery.max_keys_per_subscription`), 4 times as many per
 * topic, so that every subscription keeps forgetting keys; one in ten goes
 * through `POST /publish`.
 *
 * The load runs `--warmup-minutes` first, then the N measured minutes. Every
 * 5 s it samples Shark's RSS (from `/proc`) and its V8 heap (from its
 * `/metrics`). The bar (issue 10, "RSS at the end within 10 % of RSS after
 * the first minute"), as `_soak_memory.ts` computes it: the mean RSS of the
 * last window of the run within 10 % of the mean RSS of the first window
 * after the warm-up; each window is 5 minutes, or a fifth of a shorter run.
 * Why so: V8 raises the heap's limit for a major collection over the first
 * collections under a load (measured at 10,000 deliveries/s: the heap left
 * after each mark-compact stays at 28 MiB, while the heap reached before one
 * rose from 43–80 MiB in the first 3 minutes to 112 MiB, 4 times the live
 * heap, after 4), so RSS climbs for about 4 minutes and then saws
 * between about 180 and 245 MiB, one tooth every 80 s or so. Before the
 * warm-up ends, RSS measures V8's heap sizing; a single sample measures where
 * in a tooth it fell. A lower rate saws slower and needs a longer warm-up.
 * The growth during the warm-up is reported (`rss_start_mib`), not compared.
 * A leak still fails: it keeps growing after the warm-up, and over a
 * 30-minute run 1 MiB a minute (870 bytes per churned client) is past 10 %.
 * Also counts what the steady subscribers missed. `--gc-trace FILE` runs
 * Shark with V8's `--trace-gc`, writes its trace there and reports the heap
 * left by the first and the last mark-compact after the warm-up: the live
 * heap, which a leak in JS objects raises and heap sizing does not.
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
import { markCompacts, type MemorySample, memoryVerdict, round } from "./_soak_memory.ts";

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

/** Default warm-up before the measured minutes. */
const DEFAULT_WARMUP_MINUTES = 5;
/** The longest window whose mean RSS is compared. */
const MAX_WINDOW_S = 300;
/** RSS may grow this much (10 %) from the baseline window to the end window. */
const TOLERANCE = 0.1;

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

/** Seconds between two memory samples. */
const SAMPLE_EVERY_S = 5;

async function main(directory: string): Promise<number> {
  const { values } = harnessArgs({
    minutes: { type: "string", default: "1" },
    "warmup-minutes": { type: "string", default: String(DEFAULT_WARMUP_MINUTES) },
    rate: { type: "string", default: "10000" },
    churn: { type: "string", default: "20" },
    "max-keys": { type: "string", default: "100" },
    "gc-trace": { type: "string" },
  });
  const seconds = Number(values.minutes) * 60;
  const warmupS = Number(values["warmup-minutes"]) * 60;
  const totalS = warmupS + seconds;
  const windowS = Math.min(MAX_WINDOW_S, seconds / 5);
  const rate = Number(values.rate);
  const churn = Number(values.churn);
  const maxKeys = Number(values["max-keys"]);
  const gcTrace = values["gc-trace"];
  const publishesPerSecond = rate / SUBSCRIBERS;
  const sampleEvery = Math.min(SAMPLE_EVERY_S, windowS / 6);
  log(
    `soak: ${warmupS} s warm-up, then ${seconds} s measured; ${rate} deliveries/s ` +
      `(${publishesPerSecond} publishes/s), ${churn} connects/s; RSS: mean of ` +
      `${warmupS}-${warmupS + windowS} s against mean of ${totalS - windowS}-${totalS} s`,
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
  const spawned = performance.now();
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
    gcTrace ? { v8Flags: ["--trace-gc"], stdout: true } : {},
  );
  const steady = await Promise.all(
    Array.from({ length: SUBSCRIBERS }, (_, i) => steadyClient(shark, i)),
  );
  log(`${steady.length} steady clients subscribed`);
  const publisher = await RespConnection.connect(redis.port);
  const counts = { churned: 0, churn_errors: 0, connect_failed: 0, subscribe_failed: 0 };
  const started = performance.now();
  const until = started + totalS * 1000;
  const samples: MemorySample[] = [];
  const sample = async () => {
    const s = Math.round((performance.now() - started) / 100) / 10;
    const rss = round(shark.rssMiB());
    const heap = await shark.heapMiB().catch(() => undefined);
    samples.push({
      s,
      rss_mib: rss,
      heap_used_mib: heap && round(heap.used),
      heap_total_mib: heap && round(heap.total),
    });
    const phase = s < warmupS ? " (warm-up)" : "";
    const heapText = heap
      ? `, heap used ${round(heap.used)} of ${round(heap.total)} MiB, external ${
        round(heap.external)
      } MiB`
      : "";
    log(`t=${s}s${phase} rss ${rss} MiB${heapText}`);
  };
  await sample();
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
  await sample();
  const received = steady.reduce((sum, counter) => sum + counter.received, 0);
  const metrics = await shark.metrics();
  for (const { client } of steady) client.close();
  publisher.close();
  const stopped = await shark.terminate(30_000);
  service.down();
  await redis.stop();
  const trace = gcTrace ? await shark.child.stdout : "";
  if (gcTrace) await Deno.writeTextFile(gcTrace, trace);
  // The live heap: what each mark-compact after the warm-up left.
  const majors = markCompacts(trace, (started - spawned) / 1000)
    .filter((major) => major.s >= warmupS && major.s <= totalS);
  const memory = memoryVerdict(samples, {
    warmupS,
    endS: totalS,
    windowS,
    tolerance: TOLERANCE,
  });
  report("soak", {
    warmup_s: warmupS,
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
    rss_bar: `mean RSS ${memory.end.from_s}-${memory.end.to_s} s <= ${1 + TOLERANCE} x ` +
      `mean RSS ${memory.baseline.from_s}-${memory.baseline.to_s} s (after ${warmupS} s warm-up)`,
    rss_start_mib: memory.start_rss_mib,
    rss_baseline_window_s: `${memory.baseline.from_s}-${memory.baseline.to_s}`,
    rss_baseline_mib: memory.baseline.rss_mib,
    rss_end_window_s: `${memory.end.from_s}-${memory.end.to_s}`,
    rss_end_mib: memory.end.rss_mib,
    rss_end_over_baseline: memory.ratio,
    rss_flat: memory.flat,
    heap_used_baseline_mib: memory.baseline.heap_used_mib,
    heap_used_end_mib: memory.end.heap_used_mib,
    heap_total_baseline_mib: memory.baseline.heap_total_mib,
    heap_total_end_mib: memory.end.heap_total_mib,
    ...(gcTrace
      ? {
        gc_mark_compacts: majors.length,
        gc_live_heap_first_mib: majors[0]?.live_mib ?? null,
        gc_live_heap_last_mib: majors.at(-1)?.live_mib ?? null,
      }
      : {}),
    shark_exit_code: stopped.exit.code,
  });
  const outcomes = Object.fromEntries(
    Object.entries(metrics).filter(([name]) => /_(closed|dropped|rejected)_total/.test(name)),
  );
  console.log(JSON.stringify({ soak_memory: samples, soak_outcomes: outcomes }));
  const clean = memory.flat && expected === received && stopped.exit.code === 0 &&
    httpFailures === 0 &&
    counts.churn_errors === 0;
  return clean ? 0 : 1;
}

if (import.meta.main) runHarness(main);
