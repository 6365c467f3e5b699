/**
 * What the client SDK's tests share: an in-process Shark that can stop and
 * start again on the same port (where clients reconnect), an application
 * service that issues single-use tickets and validates them, and a recorder
 * of a {@link SharkClient}'s events.
 *
 * @module
 */
import type { SharkClient, SharkClientEventMap } from "../../client.ts";
import { type PubSub, Shark, type SharkConfigInput } from "../../mod.ts";
import { TestService } from "./service.ts";
import { FAST_HTTP } from "./shark.ts";

/** An in-process Shark on a fixed loopback port. */
export interface SharkNode {
  readonly shark: Shark;
  readonly port: number;
  /** `ws://127.0.0.1:PORT/` */
  readonly url: string;
  /** Shuts Shark down (clients get 1001) and stops listening. */
  stop(): Promise<void>;
}

/** Starts Shark on `port` (0: a free one); `http` defaults to quick retries. */
export async function startShark(
  config: SharkConfigInput,
  port = 0,
  pubsub?: PubSub,
): Promise<SharkNode> {
  const shark = new Shark({ http: FAST_HTTP, ...config }, pubsub ? { pubsub } : {});
  await shark.started;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port, onListen() {} },
    (request) => shark.handle(request),
  );
  const bound = server.addr.port;
  return {
    shark,
    port: bound,
    url: `ws://127.0.0.1:${bound}/`,
    async stop() {
      await shark.shutdown();
      await server.shutdown();
    },
  };
}

/**
 * The application: `/ticket` validates single-use tickets that {@link issue}
 * handed out (auth info `user_id`), every other path answers `ok` unless the
 * test says otherwise.
 */
export class AppService extends TestService {
  /** Tickets handed out, in order. */
  readonly issued: string[] = [];
  readonly #unused = new Set<string>();

  constructor() {
    super();
    this.answer("/ticket", ({ body }) => {
      const ticket = String(body.ticket);
      if (!this.#unused.delete(ticket)) return { status: "error", error: "Unknown ticket." };
      return { status: "ok", user_id: `user-${this.issued.indexOf(ticket)}` };
    });
  }

  /** A fresh single-use ticket, as an application's ticket endpoint makes one. */
  issue(): { method: "ticket"; ticket: string } {
    const ticket = crypto.randomUUID();
    this.issued.push(ticket);
    this.#unused.add(ticket);
    return { method: "ticket", ticket };
  }

  /** Shark's `authentication` section for this service's tickets. */
  get authentication(): SharkConfigInput["authentication"] {
    return { ticket: { validation_url: this.url("/ticket"), auth_fields: ["user_id"] } };
  }
}

/** One event a client emitted. */
export interface Recorded<K extends keyof SharkClientEventMap = keyof SharkClientEventMap> {
  readonly type: K;
  readonly detail: SharkClientEventMap[K];
  /** `performance.now()` when it was emitted. */
  readonly at: number;
}

const TYPES = ["connecting", "connected", "disconnected", "error", "ping"] as const;

/** Records every event of a client. */
export class Recorder {
  readonly events: Recorded[] = [];

  constructor(client: SharkClient) {
    for (const type of TYPES) {
      client.on(type, (detail) => this.events.push({ type, detail, at: performance.now() }));
    }
  }

  /** The events of one type, in order. */
  of<K extends keyof SharkClientEventMap>(type: K): Recorded<K>[] {
    return this.events.filter((event) => event.type === type) as Recorded<K>[];
  }

  /** Waits until `count` events of `type` were emitted; returns them. */
  async wait<K extends keyof SharkClientEventMap>(
    type: K,
    count = 1,
    ms = 5000,
  ): Promise<Recorded<K>[]> {
    await until(() => this.of(type).length >= count, ms, `${count} ${type} events`);
    return this.of(type);
  }
}

/** Polls `test` until it holds; throws naming `what` after `ms`. */
export async function until(
  test: () => boolean | Promise<boolean>,
  ms: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await test())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * A loopback TCP proxy in front of a port whose connections can be cut at
 * once: a network that drops, as a phone changing networks sees it (no
 * close frame either way).
 */
export class TcpProxy {
  readonly #listener: Deno.TcpListener;
  readonly #connections = new Set<Deno.Conn>();
  readonly #pipes = new Set<Promise<unknown>>();
  readonly #accepting: Promise<void>;

  constructor(target: number) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept(target);
  }

  /** `ws://127.0.0.1:PORT/` of the proxy. */
  get url(): string {
    return `ws://127.0.0.1:${this.#listener.addr.port}/`;
  }

  /** Cuts every connection open now; new ones are accepted. */
  cut(): void {
    for (const connection of this.#connections) {
      try {
        connection.close();
      } catch {
        // closed by the other side meanwhile
      }
    }
    this.#connections.clear();
  }

  async close(): Promise<void> {
    this.#listener.close();
    await this.#accepting;
    this.cut();
    await Promise.allSettled(this.#pipes);
  }

  async #accept(target: number): Promise<void> {
    try {
      for await (const downstream of this.#listener) {
        const upstream = await Deno.connect({ hostname: "127.0.0.1", port: target });
        this.#connections.add(downstream).add(upstream);
        for (const [from, to] of [[downstream, upstream], [upstream, downstream]]) {
          const pipe = from.readable.pipeTo(to.writable).catch(() => {});
          this.#pipes.add(pipe);
          pipe.then(() => this.#pipes.delete(pipe));
        }
      }
    } catch {
      // the listener was closed
    }
  }
}
