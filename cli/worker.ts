/**
 * The entry point of one `--workers` isolate: serves a Shark engine on the
 * shared port (`reusePort`) and answers the supervisor in `cli/workers.ts`.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { dispose } from "@logtape/logtape";
import type { SharkConfig } from "../mod.ts";
import { serve, type Served, setUpLogging, StartupError } from "./serve.ts";

/** Messages from the supervisor. */
export type ToWorker =
  | { type: "start"; config: SharkConfig; index: number }
  | { type: "metrics"; id: number }
  | { type: "shutdown" };

/** Messages to the supervisor. */
export type FromWorker =
  | { type: "listening"; port: number }
  | { type: "failed"; message: string; exitCode: number }
  | { type: "metrics"; id: number; text: string }
  | { type: "stopped" };

let served: Served | undefined;

function reply(message: FromWorker): void {
  self.postMessage(message);
}

self.onmessage = async (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  if (message.type === "start") {
    await setUpLogging(message.config);
    try {
      served = await serve(message.config, {
        reusePort: true,
        logContext: { worker: message.index },
      });
      reply({ type: "listening", port: served.server.addr.port });
    } catch (error) {
      const exitCode = error instanceof StartupError ? error.exitCode : 1;
      reply({ type: "failed", message: (error as Error).message, exitCode });
    }
  } else if (message.type === "metrics") {
    reply({ type: "metrics", id: message.id, text: served?.shark.metrics.prometheus() ?? "" });
  } else if (message.type === "shutdown") {
    if (served) {
      await served.shark.shutdown();
      await served.server.shutdown();
    }
    await dispose();
    reply({ type: "stopped" });
  }
};
