/**
 * Shark as a real process: `deno run -A main.ts ...`, its log lines parsed.
 *
 * @module
 */
import { fileURLToPath } from "node:url";

/**
 * The listener every Shark under test runs on: Shark's own transport, or
 * `Deno.serve` with `SHARK_TEST_TRANSPORT=deno` (the suite runs both ways).
 */
export const TRANSPORT: "shark" | "deno" = Deno.env.get("SHARK_TEST_TRANSPORT") === "deno"
  ? "deno"
  : "shark";

/** The repository root. */
export const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** One JSON log line. */
export type LogLine = Record<string, unknown> & {
  message?: string;
  properties?: Record<string, unknown>;
};

/** A running `main.ts`. */
export class SharkProcess {
  readonly child: Deno.ChildProcess;
  readonly lines: string[] = [];
  readonly stdout: Promise<string>;
  readonly #stderrDone: Promise<void>;
  #waiters = new Set<() => void>();

  private constructor(child: Deno.ChildProcess) {
    this.child = child;
    this.stdout = new Response(child.stdout).text();
    this.#stderrDone = (async () => {
      const decoder = new TextDecoderStream();
      let buffer = "";
      for await (const chunk of child.stderr.pipeThrough(decoder)) {
        buffer += chunk;
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          this.lines.push(buffer.slice(0, newline));
          buffer = buffer.slice(newline + 1);
          for (const waiter of this.#waiters) waiter();
        }
      }
      if (buffer) this.lines.push(buffer);
      for (const waiter of this.#waiters) waiter();
    })();
  }

  /** Spawns `deno run -A main.ts` with `args` and extra environment. */
  static spawn(args: string[], env: Record<string, string> = {}): SharkProcess {
    const command = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "main.ts", "--transport", TRANSPORT, ...args],
      cwd: ROOT,
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    });
    return new SharkProcess(command.spawn());
  }

  /** JSON log lines so far (non-JSON lines are skipped). */
  logs(): LogLine[] {
    return this.lines.flatMap((line) => {
      try {
        return [JSON.parse(line)];
      } catch {
        return [];
      }
    });
  }

  /** Waits for a log line matching `test`. */
  async waitForLog(test: (line: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.logs().find(test);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`log line not seen; stderr:\n${this.lines.join("\n")}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(left, 100));
        const waiters = this.#waiters;
        function done() {
          clearTimeout(timer);
          waiters.delete(done);
          resolve();
        }
        waiters.add(done);
      });
    }
  }

  /** Waits for the "listening" line and returns the port. */
  async listeningPort(): Promise<number> {
    const line = await this.waitForLog((line) => String(line.message).startsWith("listening on"));
    return Number(line.properties?.port);
  }

  /** Waits for the exit and all output. */
  async exit(): Promise<{ code: number; stdout: string; stderr: string }> {
    const status = await this.child.status;
    await this.#stderrDone;
    return { code: status.code, stdout: await this.stdout, stderr: this.lines.join("\n") };
  }
}

/** Runs `main.ts` to completion (for `--check`, `--help`, bad configs). */
export async function runMain(args: string[], env: Record<string, string> = {}) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", ...args],
    cwd: ROOT,
    env,
    stdin: "null",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}
