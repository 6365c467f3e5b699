/**
 * A paired A/B of Shark's CPU per client between two checkouts: this one
 * and `--base` (e.g. `git worktree add /tmp/base HEAD`). Both servers run
 * at once, pinned to the same core, each loaded in turn, round after round
 * (A, B, A, B...), so that what the shared machine does to one round it
 * does to the next; the figure is the ratio of each pair, not two medians
 * taken minutes apart. On the 2-core VM a round's CPU varies ±20 % and the
 * mean of 20 paired ratios of a checkout against itself came out at
 * 0.99–1.03 (`bench/RESULTS.md`, "Third stop").
 *
 * A round: 3,000 clients, 200 at a time, each connecting and, by `--mode`,
 * - `subrate`: `auth` with a ticket, `subscribe` to its own topic of a
 *   service with an authorizer and `before_subscribe` (three callbacks, to
 *   `callback_service.ts`), then closing: the `subrate` scenario's client;
 * - `connect`: `subscribe` to one of 50 topics without callbacks, all
 *   staying connected until the round ends (the storm's connect phase).
 * Shark uses the memory adapter: what is compared is the engine and the
 * transport, not Redis.
 *
 * Usage: `deno run -A bench/ab.ts --base /tmp/base [--mode subrate|connect] [--rounds 20]`
 *
 * @module
 */
import { connectClient } from "./_raw_ws.ts";
import { Child, cpuMs } from "./_proc.ts";
import {
  delay,
  freePort,
  log,
  pinToHelperCpu,
  ROOT,
  SHARK_CPUS,
  startCallbackService,
} from "./_harness.ts";
import { deno } from "./_scenarios.ts";
import { parseArgs } from "node:util";
import { answersOk } from "../tests/helpers/loopback.ts";
import { waitUntil } from "../tests/helpers/wait.ts";

const CLIENTS = 3000;
const CONCURRENCY = 200;
const TIMEOUT_MS = 30_000;
/**
 * Source addresses, round-robin: a run opens ~150,000 connections in two
 * minutes, and each closed one holds its local port for a minute
 * (TIME_WAIT); eight addresses ran out of ports after ~60,000.
 */
const LOCAL_ADDRESSES = Array.from({ length: 64 }, (_, index) => `127.0.0.${index + 1}`);

type Mode = "subrate" | "connect";

/** A Shark of one checkout, and the CPU per client of each of its rounds. */
interface Server {
  readonly label: string;
  readonly child: Child;
  readonly port: number;
  readonly rounds: number[];
}

function config(callbackPort: number): string {
  const callback = (path: string) => `http://127.0.0.1:${callbackPort}${path}`;
  const path = Deno.makeTempFileSync({ prefix: "shark-ab-", suffix: ".json" });
  Deno.writeTextFileSync(
    path,
    JSON.stringify({
      pubsub: { adapter: "memory" },
      log: { level: "warning" },
      authentication: { ticket: { validation_url: callback("/auth"), auth_fields: ["user_id"] } },
      services: {
        bench: { require_authentication: false },
        secure: {
          require_authentication: true,
          authorizer: callback("/authorize"),
          before_subscribe: callback("/before_subscribe"),
        },
      },
    }),
  );
  return path;
}

/** Waits until `server` answers `GET /healthz` with 200 (ready), or throws with its stderr. */
async function ready(server: Server): Promise<void> {
  try {
    await waitUntil(() => answersOk(`http://127.0.0.1:${server.port}/healthz`), 30_000, "ready");
  } catch {
    throw new Error(`${server.label} did not get ready:\n${server.child.tail()}`);
  }
}

/** One round against `server`: Shark's CPU per client in microseconds. */
async function round(server: Server, mode: Mode, tag: string): Promise<number> {
  await delay(300);
  const before = await cpuMs(server.child.pid);
  const kept: { close(): void }[] = [];
  let next = 0;
  const client = async () => {
    while (next < CLIENTS) {
      const index = next++;
      const connection = await connectClient("raw", {
        port: server.port,
        sink: { message() {} },
        timeoutMs: TIMEOUT_MS,
        localAddress: LOCAL_ADDRESSES[index % LOCAL_ADDRESSES.length],
      });
      if (mode === "connect") {
        connection.send(
          JSON.stringify({ event: "subscribe", subscription: `bench.t${index % 50}` }),
        );
        await connection.reply(TIMEOUT_MS);
        kept.push(connection);
        continue;
      }
      connection.send(JSON.stringify({ event: "auth", method: "ticket", ticket: `u${index}` }));
      await connection.reply(TIMEOUT_MS);
      connection.send(
        JSON.stringify({ event: "subscribe", subscription: `secure.${tag}.${index}` }),
      );
      await connection.reply(TIMEOUT_MS);
      connection.close();
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, client));
  const used = await cpuMs(server.child.pid) - before;
  for (const connection of kept) connection.close();
  await delay(500);
  return Math.round(used * 1000 / CLIENTS);
}

/** The middle value (the upper one of an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/**
 * The ratios B / A of rounds run one after the other (`a[i]` then `b[i]`),
 * their median and mean. Rounds missing on either side are left out.
 */
export function pairedRatios(
  a: readonly number[],
  b: readonly number[],
): { ratios: number[]; median: number; mean: number } {
  const ratios = a.slice(0, b.length).map((value, index) => b[index] / value);
  const mean = ratios.reduce((sum, ratio) => sum + ratio, 0) / ratios.length;
  return { ratios, median: median(ratios), mean };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      base: { type: "string" },
      mode: { type: "string", default: "subrate" },
      rounds: { type: "string", default: "20" },
    },
  });
  const mode = values.mode as Mode;
  const rounds = Number(values.rounds);
  if (!values.base || (mode !== "subrate" && mode !== "connect") || !(rounds >= 1)) {
    throw new Error("usage: bench/ab.ts --base DIR [--mode subrate|connect] [--rounds N]");
  }
  // The load generator shares the helper core with the callback service, as in `bench/run.ts`.
  await pinToHelperCpu();
  const { callbacks, callbackPort } = await startCallbackService();
  const configPath = config(callbackPort);
  const servers: Server[] = [values.base, ROOT].map((tree, index) => {
    const port = freePort();
    const label = index === 0 ? `A ${tree}` : `B ${tree} (this checkout)`;
    const command = deno(`${tree}/main.ts`, "--config", configPath, "--port", String(port));
    const child = new Child({ name: label, command, cpus: SHARK_CPUS, cwd: tree });
    return { label, child, port, rounds: [] };
  });
  try {
    for (const server of servers) await ready(server);
    // A warm-up round each: JIT and the callback pools.
    for (const server of servers) await round(server, mode, "warm");
    for (let index = 0; index < rounds; index++) {
      for (const server of servers) server.rounds.push(await round(server, mode, `r${index}`));
      log(`round ${index + 1}: A ${servers[0].rounds.at(-1)} / B ${servers[1].rounds.at(-1)} µs`);
    }
  } finally {
    await Promise.all(
      [callbacks, ...servers.map((server) => server.child)].map((c) => c.stop(3000)),
    );
    Deno.removeSync(configPath);
  }
  const [a, b] = servers;
  const paired = pairedRatios(a.rounds, b.rounds);
  for (const server of servers) {
    console.log(
      `${server.label}: median ${median(server.rounds)} µs/client (${server.rounds.join(" ")})`,
    );
  }
  console.log(
    `B / A, ${mode}, ${rounds} paired rounds: median ${paired.median.toFixed(3)}, mean ${
      paired.mean.toFixed(3)
    }`,
  );
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    console.error(`ab failed: ${error instanceof Error ? error.message : error}`);
    Child.killAll();
    Deno.exit(1);
  }
}
