/**
 * A command run in the repository as a user would run it (a README line, a
 * Dockerfile's `CMD`), its output collected line by line.
 *
 * @module
 */
import { ROOT } from "./process.ts";

/** How long a test waits for a line it expects. */
const LINE_WAIT_MS = 20_000;

/** A running command; stop it with {@link Running.stop}. */
export class Running {
  readonly child: Deno.ChildProcess;
  readonly stdout: string[] = [];
  readonly stderr: string[] = [];
  /** Resolves once the command exited and its output was read. */
  readonly done: Promise<Deno.CommandStatus>;

  /** Runs `argv` in the repository root, with `env` added to this process's environment. */
  constructor(argv: readonly string[], env: Record<string, string> = {}) {
    this.child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", ...env },
    }).spawn();
    const read = async (stream: ReadableStream<Uint8Array>, into: string[]) => {
      let buffer = "";
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        buffer += chunk;
        const lines = buffer.split("\n");
        buffer = lines.pop()!;
        into.push(...lines);
      }
      if (buffer) into.push(buffer);
    };
    const reading = Promise.all([
      read(this.child.stdout, this.stdout),
      read(this.child.stderr, this.stderr),
    ]);
    this.done = reading.then(() => this.child.status);
  }

  /** Runs a shell command line with bash, which replaces itself with the command. */
  static shell(line: string, env: Record<string, string> = {}): Running {
    return new Running(["bash", "-c", `exec ${line}`], env);
  }

  /** Waits for a line of `stream` that `test` accepts. */
  async line(stream: "stdout" | "stderr", test: (line: string) => boolean): Promise<string> {
    const deadline = Date.now() + LINE_WAIT_MS;
    for (;;) {
      const found = this[stream].find(test);
      if (found !== undefined) return found;
      if (Date.now() > deadline) {
        throw new Error(
          `no such line within ${LINE_WAIT_MS} ms\nstdout:\n${this.stdout.join("\n")}\nstderr:\n${
            this.stderr.join("\n")
          }`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Sends SIGTERM (`deno task` passes it on) and waits for the exit. */
  async stop(): Promise<Deno.CommandStatus> {
    try {
      this.child.kill("SIGTERM");
    } catch {
      // Already exited.
    }
    return await this.done;
  }
}
