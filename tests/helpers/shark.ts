/**
 * Shark under test: in-process (the library API behind `Deno.serve`, or
 * behind Shark's own transport: see {@link TRANSPORT}) or as the real
 * `deno run -A main.ts` process.
 *
 * @module
 */
import { type PubSub, Shark, type SharkConfigInput } from "../../mod.ts";
import { listen, type Listening } from "../../cli/serve.ts";
import { upgradeWebSocket } from "../../cli/transport/server.ts";
import { TestClient } from "./client.ts";
import { TRANSPORT } from "./process.ts";

/** Quick retries so that failure tests do not wait for the defaults. */
export const FAST_HTTP = { timeout: 1, tries: 2, wait: 0.05 } as const;

/** An in-process Shark listening on a free loopback port. */
export class TestShark {
  readonly shark: Shark;
  readonly server: Listening;

  private constructor(shark: Shark, server: Listening) {
    this.shark = shark;
    this.server = server;
  }

  /** Starts Shark with `config` (port and host are chosen here). */
  static async start(config: SharkConfigInput, pubsub?: PubSub): Promise<TestShark> {
    const shark = new Shark({
      http: FAST_HTTP,
      ...config,
      server: { transport: TRANSPORT, ...config.server },
    }, {
      ...(pubsub ? { pubsub } : {}),
      upgradeWebSocket: TRANSPORT === "shark" ? upgradeWebSocket : undefined,
    });
    await shark.started;
    return new TestShark(
      shark,
      await listen(shark, { hostname: "127.0.0.1", port: 0, onListen() {} }),
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

  /** Connects a client. */
  connect(): Promise<TestClient> {
    return TestClient.connect(this.wsUrl);
  }

  /** Publishes through the library API. */
  publish(envelope: unknown): Promise<number> {
    return this.shark.publish(envelope);
  }

  /** Shuts Shark down gracefully and stops listening. */
  async stop(): Promise<void> {
    await this.shark.shutdown();
    await this.server.shutdown();
  }
}

/** Runs `body` with a started Shark and always stops it. */
export async function withShark(
  config: SharkConfigInput,
  body: (shark: TestShark) => Promise<void>,
): Promise<void> {
  const shark = await TestShark.start(config);
  try {
    await body(shark);
  } finally {
    await shark.stop();
  }
}
