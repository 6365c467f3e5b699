/**
 * Shark under test, in-process: the library API behind Shark's own transport
 * or `Deno.serve` (see {@link TRANSPORT}) on a loopback port. (`process.ts`
 * runs the real `main.ts`.)
 *
 * @module
 */
import { Shark, type SharkConfigInput, type SharkOptions } from "../../mod.ts";
import { listen, type Listening } from "../../cli/serve.ts";
import { upgradeWebSocket } from "../../cli/transport/server.ts";
import { callbackHttpFor } from "../../cli/callbacks/net_http.ts";
import { TestClient } from "./client.ts";
import { TRANSPORT } from "./process.ts";

/** Quick retries so that failure tests do not wait for the defaults. */
export const FAST_HTTP = { timeout: 1, tries: 2, wait: 0.05 } as const;

/**
 * An in-process Shark listening on a free loopback port. Disposing of it
 * closes the clients it connected, then stops it.
 */
export class TestShark {
  readonly shark: Shark;
  readonly server: Listening;
  readonly #clients: TestClient[] = [];
  #stopped: Promise<void> | undefined;

  private constructor(shark: Shark, server: Listening) {
    this.shark = shark;
    this.server = server;
  }

  /**
   * Starts Shark with `config` (the host is chosen here, and the transport
   * unless `config.server` names one) and `options`, on `options.port`
   * (default 0: a free one; a stopped Shark's port starts one where its
   * clients reconnect).
   */
  static async start(
    config: SharkConfigInput,
    options: SharkOptions & { port?: number } = {},
  ): Promise<TestShark> {
    const { port = 0, ...sharkOptions } = options;
    const server = { transport: TRANSPORT, ...config.server };
    const shark = new Shark({ http: FAST_HTTP, ...config, server }, {
      upgradeWebSocket: server.transport === "shark" ? upgradeWebSocket : undefined,
      callbackHttp: callbackHttpFor((name) => Deno.env.get(name)),
      ...sharkOptions,
    });
    await shark.started;
    return new TestShark(
      shark,
      await listen(shark, { hostname: "127.0.0.1", port, onListen() {} }),
    );
  }

  get port(): number {
    return this.server.addr.port;
  }

  /** The WebSocket URL. */
  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/`;
  }

  /** An HTTP URL on the same listener. */
  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  /** Connects a client (closed when this Shark is stopped, if not before). */
  async connect(): Promise<TestClient> {
    const client = await TestClient.connect(this.wsUrl);
    this.#clients.push(client);
    return client;
  }

  /** Connects a client and subscribes it (see {@link TestClient.subscribe}). */
  async subscriber(subscription: string, extra: Record<string, unknown> = {}): Promise<TestClient> {
    const client = await this.connect();
    await client.subscribe(subscription, extra);
    return client;
  }

  /** Publishes through the library API. */
  publish(envelope: unknown): Promise<number> {
    return this.shark.publish(envelope);
  }

  /** Closes the clients, shuts Shark down gracefully and stops listening (once). */
  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      for (const client of this.#clients) await client.close();
      await this.shark.shutdown();
      await this.server.shutdown();
    })();
    return this.#stopped;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}
