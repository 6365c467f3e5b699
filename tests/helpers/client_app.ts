/**
 * What the client SDK's tests share: an application service that issues
 * single-use tickets and validates them, a {@link SharkClient} that a test
 * disposes of, a recorder of its events, and a TCP proxy whose connections
 * can be cut. (A Shark that restarts on its port: `TestShark.start` with
 * `port`.)
 *
 * @module
 */
import { SharkClient, type SharkClientEventMap, type SharkClientOptions } from "../../client.ts";
import type { SharkConfigInput } from "../../mod.ts";
import { TestService } from "./service.ts";
import { waitUntil } from "./wait.ts";

/** A client closed when the test's `await using` scope ends. */
export function testClient(
  url: string,
  options: SharkClientOptions = {},
): SharkClient & AsyncDisposable {
  const client = new SharkClient(url, options);
  return Object.assign(client, { [Symbol.asyncDispose]: () => client.close() });
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
    await waitUntil(() => this.of(type).length >= count, ms, `${count} ${type} events`);
    return this.of(type);
  }
}

/**
 * A loopback TCP proxy in front of a port whose connections can be cut at
 * once: a network that drops, as a phone changing networks sees it (no
 * close frame either way).
 */
export class TcpProxy implements AsyncDisposable {
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

  async [Symbol.asyncDispose](): Promise<void> {
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
