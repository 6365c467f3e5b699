/**
 * The entry point of one `--workers` isolate: prepares a Shark engine, then
 * serves it on the shared port (`reusePort`) when the supervisor in
 * `cli/workers.ts` says so, and answers its questions.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { dispose } from "@logtape/logtape";
import type { SharkConfig } from "../mod.ts";
import { isolateMemoryMetrics } from "./memory_metrics.ts";
import { prepare, type Prepared, type Served, setUpLogging, StartupError } from "./serve.ts";

/** Messages from the supervisor. */
export type ToWorker =
  | { type: "start"; config: SharkConfig; index: number }
  | { type: "listen"; port: number }
  | { type: "metrics"; id: number }
  | { type: "shutdown" };

/** Messages to the supervisor. */
export type FromWorker =
  | { type: "ready" }
  | { type: "listening"; port: number }
  | { type: "failed"; message: string; exitCode: number }
  | { type: "metrics"; id: number; text: string }
  | { type: "stopped" };

let prepared: Prepared | undefined;
let served: Served | undefined;

function reply(message: FromWorker): void {
  self.postMessage(message);
}

function failed(error: unknown): void {
  const exitCode = error instanceof StartupError ? error.exitCode : 1;
  reply({ type: "failed", message: (error as Error).message, exitCode });
}

self.onmessage = async (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  if (message.type === "start") {
    await setUpLogging(message.config);
    try {
      prepared = await prepare(message.config, {
        reusePort: true,
        logContext: { worker: message.index },
      });
      reply({ type: "ready" });
    } catch (error) {
      failed(error);
    }
  } else if (message.type === "listen") {
    try {
      served = await prepared!.listen(message.port);
      reply({ type: "listening", port: served.server.addr.port });
    } catch (error) {
      failed(error);
    }
  } else if (message.type === "metrics") {
    const engine = prepared?.metrics() ?? "";
    reply({ type: "metrics", id: message.id, text: engine + isolateMemoryMetrics() });
  } else if (message.type === "shutdown") {
    await prepared?.shark.shutdown();
    await served?.server.shutdown();
    await dispose();
    reply({ type: "stopped" });
  }
};
