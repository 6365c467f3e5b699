/**
 * The project's own fuzz, fault and soak harness, each run for seconds
 * against the real `main.ts` with a real `redis-server` (the same programs
 * as `deno task fuzz`, `faults` and `soak`, which run for minutes). Timing
 * bounds here are twice the harness's own, for a busy machine.
 */
import assert from "node:assert/strict";
import { Running } from "./helpers/command.ts";
import { TRANSPORT } from "./helpers/process.ts";
import { redisAvailable } from "./helpers/redis_server.ts";

type Figures = Record<string, string | number | boolean | null>;

/**
 * Runs a harness task to its end as the README says (`deno task fuzz -- ARGS`),
 * Shark on the transport the suite runs on; its figures are the JSON lines of
 * its report, by title.
 */
async function runHarness(task: string, args: string[]) {
  const run = new Running([Deno.execPath(), "task", task, "--", "--transport", TRANSPORT, ...args]);
  const { code } = await run.done;
  const reports: Record<string, Figures> = {};
  for (const line of run.stdout) {
    if (line.startsWith("{")) Object.assign(reports, JSON.parse(line));
  }
  const failure = `${run.stdout.join("\n")}\n${run.stderr.join("\n").slice(-4000)}`;
  return { code, reports, failure };
}

const ignore = !(await redisAvailable());

Deno.test({
  name:
    "fuzz: seconds of random frames, garbage service replies and garbage publishes crash nothing and cost the bystander no message",
  ignore,
  async fn() {
    const { code, reports, failure } = await runHarness(
      "fuzz",
      "--seconds 4 --seed 7 --clients 8 --rate 1500".split(" "),
    );
    const fuzz = reports.fuzz;
    assert.ok(fuzz, failure);
    assert.equal(fuzz.crashes, 0, failure);
    assert.equal(fuzz.bystander_lost, 0, failure);
    assert.equal(fuzz.bystander_closed, null, failure);
    // About 6,000 on a quiet machine; one busy with other test runs managed 781.
    assert.ok((fuzz.inputs as number) > 200, failure);
    assert.ok((fuzz.service_replies as number) > 0, failure);
    assert.ok((fuzz.publishes as number) > 0, failure);
    assert.equal(fuzz.shark_exit_code, 0, failure);
    assert.equal(code, 0, failure);
  },
});

Deno.test({
  name:
    "faults: Redis frozen, killed, slow; a service down mid-subscribe; SIGTERM under load; a Redis Cluster primary frozen, killed, failed over: each noticed (a manual failover never), recovered from, every on_unsubscribe sent, exit 0",
  ignore,
  async fn() {
    const { reports, failure } = await runHarness("faults", ["--clients", "50"]);
    const faults = Object.values(reports);
    assert.equal(faults.length, 9, failure);
    for (const fault of faults) {
      const name = `${fault.fault}: ${failure}`;
      if (String(fault.fault).includes("under_ping_timeout")) {
        assert.equal(fault.detected, false, name);
      } else {
        assert.equal(fault.detected, true, name);
        assert.ok((fault.detection_s as number) <= 2 * (fault.bound_s as number), name);
      }
      assert.equal(fault.recovered, true, name);
    }
  },
});

Deno.test({
  name:
    "soak: seconds of paced fan-out with connects, subscribes and disconnects lose nothing and exit 0",
  ignore,
  async fn() {
    const { reports, failure } = await runHarness(
      "soak",
      "--minutes 0.25 --warmup-minutes 0 --rate 2000 --churn 10 --max-keys 10".split(" "),
    );
    const soak = reports.soak;
    assert.ok(soak, failure);
    assert.equal(soak.steady_lost, 0, failure);
    assert.ok((soak.churned as number) > 50, failure);
    assert.equal(soak.churn_errors, 0, failure);
    assert.ok((soak.keys_forgotten as number) > 0, failure);
    assert.equal(soak.http_publish_failures, 0, failure);
    // Seconds are too short for the memory bar to mean anything (`deno task
    // soak` judges it over minutes), but what it compares is stated and fed.
    assert.equal(soak.rss_bar, "mean RSS 12-15 s <= 1.1 x mean RSS 0-3 s (after 0 s warm-up)");
    assert.ok((soak.heap_used_baseline_mib as number) > 0, failure);
    assert.ok(
      (soak.rss_baseline_mib as number) > (soak.heap_total_baseline_mib as number),
      failure,
    );
    assert.equal(soak.shark_exit_code, 0, failure);
  },
});
