/**
 * A fake application service on loopback: records every callback body and
 * answers each path with what the test says.
 *
 * @module
 */

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
    await new Promise((resolve) => setTimeout(resolve, ms));
    return reply;
  };
}

/** A running fake service. */
export class TestService {
  readonly calls: Call[] = [];
  readonly #answers = new Map<string, Answer>();
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #waiters = new Set<() => void>();

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
        for (const waiter of this.#waiters) waiter();
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

  /** Waits until `path` has been called `count` times. */
  async waitFor(path: string, count = 1, timeoutMs = 5000): Promise<Call[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const calls = this.calls.filter((call) => call.path === path);
      if (calls.length >= count) return calls;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`${path} called ${calls.length} times, expected ${count}: ${this.paths()}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.#waiters.add(done);
      });
      this.#waiters.clear();
    }
  }

  async close(): Promise<void> {
    await this.#server.shutdown();
  }
}
