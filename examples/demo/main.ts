/**
 * The demo: a chat with rooms on Shark. `deno task demo` starts the chat
 * service on http://127.0.0.1:8000/ and Shark (`main.ts` with this folder's
 * `shark.json`) on ws://127.0.0.1:9000/, on the memory adapter. With
 * `--redis [URL]` two Shark nodes (9000 and 9001) share one Redis, as in
 * production: the page connects to the first, the service publishes through
 * whichever node answers, and the room's history lives in Redis.
 *
 * ```sh
 * deno task demo                      # memory adapter
 * deno task demo --redis              # redis://127.0.0.1:6379/0, two nodes
 * deno task demo --port 8080 --shark-port 9090
 * ```
 *
 * Open the page in two windows and post. Press Enter in the launcher's
 * terminal to restart Shark (the first node): the pages show the
 * disconnect, reconnect with backoff and show the room's fresh state (memory)
 * or catch up on what was published meanwhile (Redis). Ctrl+C stops all.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ChatService } from "./service.ts";

const ROOT = new URL("../../", import.meta.url);
const CONFIG = new URL("shark.json", import.meta.url);
/** The service origin `shark.json` names; other ports are written into a copy. */
const CONFIG_ORIGIN = "http://127.0.0.1:8000";

/** How the demo runs. */
export interface DemoOptions {
  /** The chat service's port (0: a free one). Default 8000. */
  readonly port?: number;
  /** Shark's port (the page connects here). Default 9000. */
  readonly sharkPort?: number;
  /** With Redis, the second node's port. Default `sharkPort` + 1. */
  readonly otherPort?: number;
  /** Run two Shark nodes on this Redis instead of one on the memory adapter. */
  readonly redisUrl?: string;
  /** Shark's log lines go to this process's stderr; default true. */
  readonly logs?: boolean;
}

/** A running Shark process. */
interface Node {
  readonly port: number;
  child?: Deno.ChildProcess;
}

/** The running demo: the chat service and its Shark nodes. */
export class Demo implements AsyncDisposable {
  readonly service: ChatService;
  readonly #nodes: Node[];
  readonly #options: DemoOptions;
  readonly #env: Record<string, string>;

  private constructor(options: DemoOptions, service: ChatService, nodes: Node[], secret: string) {
    this.#options = options;
    this.service = service;
    this.#nodes = nodes;
    this.#env = { DEMO_PUBLISH_SECRET: secret };
  }

  /** Starts the service and every Shark node, and waits until they answer. */
  static async start(options: DemoOptions = {}): Promise<Demo> {
    const sharkPort = options.sharkPort ?? 9000;
    const ports = options.redisUrl ? [sharkPort, options.otherPort ?? sharkPort + 1] : [sharkPort];
    const secret = crypto.randomUUID();
    const service = new ChatService({
      port: options.port ?? 8000,
      sharkUrl: `ws://127.0.0.1:${sharkPort}/`,
      publishUrls: ports.map((port) => `http://127.0.0.1:${port}/publish`),
      secret,
    });
    const demo = new Demo(options, service, ports.map((port) => ({ port })), secret);
    for (let index = 0; index < ports.length; index++) await demo.startShark(index);
    return demo;
  }

  /** The page. */
  get url(): string {
    return `${this.service.origin}/`;
  }

  /** Starts Shark node `index` (again) and waits for its `/healthz`. */
  async startShark(index = 0): Promise<void> {
    const node = this.#nodes[index];
    if (node.child) return;
    const { redisUrl, logs = true } = this.#options;
    const text = await Deno.readTextFile(CONFIG);
    const config = text.replaceAll(CONFIG_ORIGIN, this.service.origin);
    const args = ["run", "-A", "main.ts", "--port", String(node.port)];
    if (config === text) args.push("--config", CONFIG.pathname);
    if (redisUrl) args.push("--adapter", "redis", "--redis-url", redisUrl);
    const child = node.child = new Deno.Command(Deno.execPath(), {
      args,
      cwd: ROOT,
      env: config === text ? this.#env : { ...this.#env, SHARK_CONFIG: config },
      stdin: "null",
      stdout: logs ? "inherit" : "null",
      stderr: logs ? "inherit" : "null",
    }).spawn();
    let exit: number | undefined;
    child.status.then((status) => exit = status.code);
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (exit !== undefined) {
        node.child = undefined;
        throw new Error(`Shark on port ${node.port} exited with code ${exit} (is the port taken?)`);
      }
      try {
        const response = await fetch(`http://127.0.0.1:${node.port}/healthz`);
        await response.body?.cancel();
        if (response.ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        await this.stopShark(index);
        throw new Error(`Shark on port ${node.port} did not start within 20 s`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Stops Shark node `index` gracefully (its clients get 1001). */
  async stopShark(index = 0): Promise<void> {
    const child = this.#nodes[index].child;
    if (!child) return;
    this.#nodes[index].child = undefined;
    child.kill("SIGTERM");
    await child.status;
  }

  async stop(): Promise<void> {
    for (let index = 0; index < this.#nodes.length; index++) await this.stopShark(index);
    await this.service.stop();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      port: { type: "string", default: "8000" },
      "shark-port": { type: "string", default: "9000" },
      redis: { type: "boolean", default: false },
      "redis-url": { type: "string" },
    },
  });
  const demo = await Demo.start({
    port: Number(values.port),
    sharkPort: Number(values["shark-port"]),
    redisUrl: values["redis-url"] ?? (values.redis ? "redis://127.0.0.1:6379/0" : undefined),
  });
  console.log(`Demo chat: open ${demo.url}?user=ada&room=lobby in two windows.`);
  console.log("Enter restarts Shark, Ctrl+C stops everything.");
  const stopped = new Promise<void>((resolve) => {
    Deno.addSignalListener("SIGINT", resolve);
    Deno.addSignalListener("SIGTERM", resolve);
  });
  (async () => {
    for await (const _ of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
      console.log("restarting Shark");
      await demo.stopShark(0);
      await demo.startShark(0);
    }
  })();
  await stopped;
  await demo.stop();
  Deno.exit(0);
}
