/**
 * `--workers N`: N isolates (Web Workers) serving the same port with
 * `reusePort`, so that one process uses every core. The isolates share
 * nothing but the pub/sub adapter, which must therefore cross isolates
 * (broadcast_channel or redis).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { SharkConfig } from "../mod.ts";
import { StartupError } from "./serve.ts";
import type { FromWorker, ToWorker } from "./worker.ts";

class WorkerHandle {
  readonly worker: Worker;
  readonly index: number;
  readonly #listeners = new Set<(message: FromWorker) => void>();

  constructor(index: number, onCrash: (index: number, error: string) => void) {
    this.index = index;
    this.worker = new Worker(new URL("./worker.ts", import.meta.url), {
      type: "module",
      name: `shark-worker-${index}`,
    });
    this.worker.onmessage = (event: MessageEvent<FromWorker>) => {
      for (const listener of this.#listeners) listener(event.data);
    };
    this.worker.onerror = (event) => {
      event.preventDefault();
      onCrash(index, event.message);
    };
  }

  post(message: ToWorker): void {
    this.worker.postMessage(message);
  }

  /** The next message matching `accept`, or `undefined` after `timeoutMs`. */
  next<T extends FromWorker>(accept: (message: FromWorker) => message is T, timeoutMs: number) {
    return new Promise<T | undefined>((resolve) => {
      const timer = setTimeout(() => finish(undefined), timeoutMs);
      const listener = (message: FromWorker) => {
        if (accept(message)) finish(message);
      };
      const finish = (message: T | undefined) => {
        clearTimeout(timer);
        this.#listeners.delete(listener);
        resolve(message);
      };
      this.#listeners.add(listener);
    });
  }
}

const isReadyReply = (m: FromWorker): m is Extract<FromWorker, { type: "ready" | "failed" }> =>
  m.type === "ready" || m.type === "failed";

const isListenReply = (m: FromWorker): m is Extract<FromWorker, { type: "listening" | "failed" }> =>
  m.type === "listening" || m.type === "failed";

/**
 * Merges the expositions of several isolates into one: each metric family
 * once, each sample labelled with its `worker`, so that `sum()` gives the
 * process total.
 */
export function mergeExpositions(texts: readonly string[]): string {
  const families = new Map<string, { header: string[]; samples: string[] }>();
  texts.forEach((text, worker) => {
    let family: { header: string[]; samples: string[] } | undefined;
    for (const line of text.split("\n")) {
      if (line === "") continue;
      const header = /^# (HELP|TYPE) (\S+)/.exec(line);
      if (header) {
        family = families.get(header[2]);
        if (!family) families.set(header[2], family = { header: [], samples: [] });
        if (worker === 0) family.header.push(line);
        continue;
      }
      const labelled = line.replace(
        /^([^\s{]+)(\{([^}]*)\})?/,
        (_, name, _braces, labels) => `${name}{${labels ? `${labels},` : ""}worker="${worker}"}`,
      );
      family?.samples.push(labelled);
    }
  });
  return [...families.values()].flatMap((f) => [...f.header, ...f.samples]).join("\n") + "\n";
}

/** N isolates serving one port. */
export class WorkerPool {
  readonly #workers: WorkerHandle[];
  #metricsId = 0;

  private constructor(workers: WorkerHandle[]) {
    this.#workers = workers;
  }

  /**
   * Starts `count` isolates. All prepare their engine at once (the slow
   * part: modules, the adapter); only then do they listen, one after the
   * other in quick succession, the first on the configured port (a free one
   * when it is 0) and the others on the same. An isolate that listened
   * seconds before the others would take most of the first connections: the
   * kernel spreads connections only over the sockets listening when they arrive.
   */
  static async start(
    config: SharkConfig,
    count: number,
    onCrash: (index: number, error: string) => void,
  ): Promise<{ pool: WorkerPool; port: number }> {
    const workers: WorkerHandle[] = [];
    const pool = new WorkerPool(workers);
    let port = config.server.port;
    try {
      for (let index = 0; index < count; index++) {
        const handle = new WorkerHandle(index, onCrash);
        workers.push(handle);
        handle.post({ type: "start", config, index });
      }
      await Promise.all(workers.map(async (handle) => {
        const reply = await handle.next(isReadyReply, 30_000);
        if (!reply) throw new StartupError(`worker ${handle.index} did not start within 30 s`, 1);
        if (reply.type === "failed") throw new StartupError(reply.message, reply.exitCode);
      }));
      for (const handle of workers) {
        handle.post({ type: "listen", port });
        const reply = await handle.next(isListenReply, 30_000);
        if (!reply) throw new StartupError(`worker ${handle.index} did not listen within 30 s`, 1);
        if (reply.type === "failed") throw new StartupError(reply.message, reply.exitCode);
        port = reply.port;
      }
    } catch (error) {
      pool.terminate();
      throw error;
    }
    return { pool, port };
  }

  /** The Prometheus exposition of every isolate, merged. */
  async metrics(): Promise<string> {
    const id = ++this.#metricsId;
    const texts = await Promise.all(this.#workers.map(async (handle) => {
      handle.post({ type: "metrics", id });
      const isMine = (m: FromWorker): m is Extract<FromWorker, { type: "metrics" }> =>
        m.type === "metrics" && m.id === id;
      return (await handle.next(isMine, 5000))?.text ?? "";
    }));
    return mergeExpositions(texts);
  }

  /** Gracefully shuts every isolate down, waiting at most `timeoutMs`. */
  async shutdown(timeoutMs: number): Promise<void> {
    const log = getLogger(["shark"]);
    await Promise.all(this.#workers.map(async (handle) => {
      handle.post({ type: "shutdown" });
      const stopped = await handle.next(
        (m): m is { type: "stopped" } => m.type === "stopped",
        timeoutMs,
      );
      if (!stopped) log.warn("worker {index} did not stop in time", { index: handle.index });
    }));
    this.terminate();
  }

  /** Stops every isolate at once. */
  terminate(): void {
    for (const handle of this.#workers) handle.worker.terminate();
  }
}
