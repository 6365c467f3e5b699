/**
 * A fake application service on loopback: records every callback body and
 * answers each path with what the test says.
 *
 * @module
 */
import { Changes, delay, waitUntil } from "./wait.ts";

/** One callback the service received. */
export interface Call {
  readonly path: string;
  readonly body: Record<string, unknown>;
  readonly headers: Headers;
  readonly at: number;
  /** The client's port: equal ports mean a reused (kept-alive) connection. */
  readonly remotePort: number;
}

/** How the service answers a path: a JSON body, or a full `Response`. */
export type Answer =
  | Record<string, unknown>
  | Response
  | ((
    call: Call,
  ) => Record<string, unknown> | Response | Promise<Record<string, unknown> | Response>);

/** An answer given only after `ms`: a slow service. */
export function slowly(ms: number, reply: Record<string, unknown> = { status: "ok" }): Answer {
  return async () => {
    await delay(ms);
    return reply;
  };
}

/** An answer held back until `release()`: a service in the middle of its work. */
export function held(reply: Record<string, unknown>): { answer: Answer; release: () => void } {
  const gate = Promise.withResolvers<void>();
  return {
    answer: async () => {
      await gate.promise;
      return reply;
    },
    release: () => gate.resolve(),
  };
}

/** A running fake service; disposing of it closes it. */
export class TestService {
  readonly calls: Call[] = [];
  readonly #answers = new Map<string, Answer>();
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #changes = new Changes();

  constructor(answers: Record<string, Answer> = {}) {
    for (const [path, answer] of Object.entries(answers)) this.#answers.set(path, answer);
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      async (request, info) => {
        const path = new URL(request.url).pathname;
        const text = await request.text();
        let body: Record<string, unknown>;
        try {
          body = JSON.parse(text);
        } catch {
          body = { unparsable: text };
        }
        const call: Call = {
          path,
          body,
          headers: request.headers,
          at: performance.now(),
          remotePort: info.remoteAddr.port,
        };
        this.calls.push(call);
        this.#changes.notify();
        const answer = this.#answers.get(path) ?? { status: "ok" };
        const result = typeof answer === "function" ? await answer(call) : answer;
        return result instanceof Response ? result.clone() : Response.json(result);
      },
    );
  }

  /** The base URL, e.g. `http://127.0.0.1:1234`. */
  get origin(): string {
    return `http://127.0.0.1:${this.#server.addr.port}`;
  }

  /** The URL of a path on this service. */
  url(path: string): string {
    return `${this.origin}${path}`;
  }

  /** Sets how a path is answered from now on. */
  answer(path: string, answer: Answer): void {
    this.#answers.set(path, answer);
  }

  /** Bodies of the calls to `path`, in order. */
  bodies(path: string): Record<string, unknown>[] {
    return this.calls.filter((call) => call.path === path).map((call) => call.body);
  }

  /** Paths called, in order. */
  paths(): string[] {
    return this.calls.map((call) => call.path);
  }

  /** Waits until `path` has been called `count` times; returns those calls. */
  waitFor(path: string, count = 1, timeoutMs = 5000): Promise<Call[]> {
    const calls = () => this.calls.filter((call) => call.path === path);
    return waitUntil(
      () => {
        const made = calls();
        return made.length >= count && made;
      },
      timeoutMs,
      () => `${path} called ${calls().length} times, expected ${count}: ${this.paths()}`,
      this.#changes,
    );
  }

  async close(): Promise<void> {
    await this.#server.shutdown();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
