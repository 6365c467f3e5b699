/**
 * Client CPU per service callback, by HTTP client: `fetch` (the engine's
 * default, `FetchCallbackHttp`), `node:http` with a keep-alive `Agent` (a
 * candidate not kept), and the CLI's HTTP/1.1 client over `node:net`
 * (`NetCallbackHttp`). Each runs in a process of its own pinned to CPU 0,
 * `--requests` POSTs with 64 in flight (`http.max_concurrent`'s default)
 * after a warm-up, against `bench/callback_service.ts` on CPU 1; the modes
 * alternate for `--rounds` rounds.
 *
 * ```sh
 * deno run -A bench/callback_micro.ts [--requests 20000] [--rounds 2]
 * ```
 *
 * @module
 */
import http from "node:http";
import process from "node:process";
import { parseArgs } from "node:util";
import { Buffer } from "node:buffer";
import type { CallbackHttp } from "../src/callbacks/callback_http.ts";
import { FetchCallbackHttp } from "../src/callbacks/fetch_http.ts";
import { NetCallbackHttp } from "../cli/callbacks/net_http.ts";
import { answersOk, freePort } from "../tests/helpers/loopback.ts";
import { waitUntil } from "../tests/helpers/wait.ts";
import { Child } from "./_proc.ts";

const MODES = ["fetch", "node-http", "net"] as const;
const IN_FLIGHT = 64;
const BODY = JSON.stringify({ subscription: "secure.s1", user_id: "u1" });
const HEADERS = { "content-type": "application/json" };

/** `node:http` with a keep-alive agent, as a `CallbackHttp` (its timeout left out). */
function nodeHttp(): CallbackHttp {
  const agent = new http.Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
  return {
    post: (request) =>
      new Promise((resolve, reject) => {
        const sent = http.request(request.url, {
          method: "POST",
          agent,
          headers: { ...request.headers, "content-length": Buffer.byteLength(request.body) },
        }, (response) => {
          let body = "";
          response.setEncoding("utf8");
          response.on("data", (chunk: string) => body += chunk);
          response.on("end", () =>
            resolve({
              status: response.statusCode!,
              header: (name) => (response.headers[name.toLowerCase()] as string) ?? null,
              body,
            }));
        });
        sent.on("error", reject);
        sent.end(request.body);
      }),
    close: () => agent.destroy(),
  };
}

/** One measured run in this process: prints `{mode, per_s, cpu_us}`. */
async function measure(mode: string, url: string, requests: number): Promise<void> {
  const client = mode === "fetch"
    ? new FetchCallbackHttp()
    : mode === "net"
    ? new NetCallbackHttp()
    : nodeHttp();
  const run = async (count: number) => {
    let next = 0;
    await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
      while (next++ < count) {
        const answer = await client.post({
          url,
          headers: HEADERS,
          body: BODY,
          timeoutMs: 15_000,
          maxBytes: 4 * 1024 * 1024,
        });
        JSON.parse(answer.body);
      }
    }));
  };
  await run(Math.min(requests, 5000));
  const cpu = process.cpuUsage();
  const started = performance.now();
  await run(requests);
  const used = process.cpuUsage(cpu);
  const seconds = (performance.now() - started) / 1000;
  client.close();
  console.log(JSON.stringify({
    mode,
    per_s: Math.round(requests / seconds),
    cpu_us: Math.round((used.user + used.system) / requests * 10) / 10,
    user_us: Math.round(used.user / requests * 10) / 10,
    system_us: Math.round(used.system / requests * 10) / 10,
  }));
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    requests: { type: "string", default: "20000" },
    rounds: { type: "string", default: "2" },
    mode: { type: "string" },
    url: { type: "string" },
  },
});

if (values.mode) {
  await measure(values.mode, values.url!, Number(values.requests));
  Deno.exit(0);
}

const port = freePort();
const service = new Child({
  name: "callback service",
  command: [Deno.execPath(), "run", "-A", "bench/callback_service.ts", "--port", String(port)],
  cpus: "1",
  cwd: new URL("../", import.meta.url).pathname,
});
try {
  await waitUntil(() => answersOk(`http://127.0.0.1:${port}/stats`), 30_000, "callback service");
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const mode of MODES) {
      const child = new Child({
        name: mode,
        command: [
          Deno.execPath(),
          "run",
          "-A",
          import.meta.filename!,
          "--mode",
          mode,
          "--url",
          `http://127.0.0.1:${port}/authorize`,
          "--requests",
          values.requests,
        ],
        cpus: "0",
        stdout: true,
      });
      await child.status;
      console.log((await child.stdout).trim());
    }
  }
} finally {
  await service.stop();
}
