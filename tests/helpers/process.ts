/**
 * Shark as a real process: `deno run -A main.ts ...`, its log lines parsed.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { Changes, waitUntil, within } from "./wait.ts";

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

/** How a process ended, with all it wrote. */
export interface Exit {
  readonly code: number;
  /** The signal that ended it, `null` when it exited by itself. */
  readonly signal: Deno.Signal | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** How long a process may take to exit after SIGTERM. */
const STOP_TIMEOUT_MS = 10_000;

/** A running `main.ts` (or another Deno program); disposing of it stops it. */
export class SharkProcess {
  readonly child: Deno.ChildProcess;
  readonly lines: string[] = [];
  readonly stdout: Promise<string>;
  readonly #stderrDone: Promise<void>;
  readonly #changes = new Changes();

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
          this.#changes.notify();
        }
      }
      if (buffer) this.lines.push(buffer);
      this.#changes.notify();
    })();
  }

  /** Spawns `deno run -A main.ts` on {@link TRANSPORT} with `args` and extra environment. */
  static spawn(args: string[], env: Record<string, string> = {}): SharkProcess {
    return SharkProcess.deno(["run", "-A", "main.ts", "--transport", TRANSPORT, ...args], env);
  }

  /** Spawns `deno` with `args` (e.g. `serve --parallel ...`) in the repository root. */
  static deno(args: string[], env: Record<string, string> = {}): SharkProcess {
    const command = new Deno.Command(Deno.execPath(), {
      args,
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
  waitForLog(test: (line: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> {
    return waitUntil(
      () => this.logs().find(test),
      timeoutMs,
      () => `log line not seen; stderr:\n${this.lines.join("\n")}`,
      this.#changes,
    );
  }

  /** Waits for the "listening" line and returns the port. */
  async listeningPort(): Promise<number> {
    const line = await this.waitForLog((line) => String(line.message).startsWith("listening on"));
    return Number(line.properties?.port);
  }

  /** Waits for the exit and all output. */
  async exit(): Promise<Exit> {
    const status = await this.child.status;
    await this.#stderrDone;
    return {
      code: status.code,
      signal: status.signal,
      stdout: await this.stdout,
      stderr: this.lines.join("\n"),
    };
  }

  /**
   * SIGTERM, then waits for the exit; one that does not come within 10 s is
   * an error (and the process is killed).
   */
  async stop(): Promise<Exit> {
    this.#signal("SIGTERM");
    try {
      return await within(this.exit(), STOP_TIMEOUT_MS, "exit after SIGTERM");
    } catch (error) {
      this.#signal("SIGKILL");
      await this.exit();
      throw error;
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  #signal(signal: Deno.Signal): void {
    try {
      this.child.kill(signal);
    } catch {
      // Already exited.
    }
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
