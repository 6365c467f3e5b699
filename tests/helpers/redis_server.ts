/**
 * A real `redis-server` on a free loopback port, for the Redis tests and the
 * benchmarks: start, wait until it answers PING, stop (SIGTERM, then
 * SIGKILL), restart on the same port; plus `redis-cli` for what a
 * SocketShark publisher would do.
 *
 * @module
 */
import { freePort } from "./loopback.ts";
import { toolAvailable } from "./tool.ts";
import { waitUntil, within } from "./wait.ts";

/** How long a server may take to answer PING after it was spawned. */
const READY_TIMEOUT_MS = 5000;
/** How long a stopped server may take to exit before it is killed. */
const STOP_TIMEOUT_MS = 3000;

/**
 * Whether `redis-server` and `redis-cli` are installed; warns loudly when they
 * are not, since the Redis tests are then skipped.
 */
export async function redisAvailable(): Promise<boolean> {
  const skips = "the Redis tests";
  return (await toolAvailable("redis-server", { skips })) &&
    (await toolAvailable("redis-cli", { skips }));
}

/** Whether `openssl` is installed (for {@link makeTlsFiles}); warns loudly when it is not. */
export function opensslAvailable(): Promise<boolean> {
  return toolAvailable("openssl", { args: ["version"], skips: "the TLS tests" });
}

/** Sends `PING` (after `AUTH` when a password is set); true on `+PONG` within `timeoutMs`. */
async function answersPing(
  port: number,
  options: RedisServerOptions,
  caCert: string | undefined,
  timeoutMs: number,
): Promise<boolean> {
  let connection: Deno.Conn | undefined;
  const timer = setTimeout(() => {
    try {
      connection?.close();
    } catch {
      // already closed
    }
  }, timeoutMs);
  try {
    connection = caCert === undefined
      ? await Deno.connect({ hostname: "127.0.0.1", port })
      : await Deno.connectTls({ hostname: "127.0.0.1", port, caCerts: [caCert] });
    const auth = options.password === undefined ? "" : `AUTH ${options.password}\r\n`;
    await connection.write(new TextEncoder().encode(`${auth}PING\r\n`));
    const buffer = new Uint8Array(256);
    let text = "";
    while (!text.includes("+PONG") && !text.startsWith("-")) {
      const read = await connection.read(buffer);
      if (read === null) return false;
      text += new TextDecoder().decode(buffer.subarray(0, read));
    }
    return text.includes("+PONG");
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    try {
      connection?.close();
    } catch {
      // closed by the timer
    }
  }
}

/** Paths of PEM files for a TLS-only server. */
export interface TlsFiles {
  readonly cert: string;
  readonly key: string;
  /** The CA that signed `cert`; clients trust it (`DENO_CERT`, `redis-cli --cacert`). */
  readonly ca: string;
}

/** How a {@link RedisServer} is run. */
export interface RedisServerOptions {
  /** `requirepass`: clients must AUTH with it. */
  readonly password?: string;
  /** Serve TLS only (`rediss://`) with these files. */
  readonly tls?: TlsFiles;
  /** More `redis-server` arguments, after the ones set here. */
  readonly args?: readonly string[];
  /**
   * Starts the `redis-server` command line (the benchmarks pin it to a CPU);
   * by default a child process whose output is discarded.
   */
  readonly spawn?: (command: readonly string[]) => Deno.ChildProcess;
}

/** Writes a throw-away CA and a server certificate for 127.0.0.1 into `dir` with `openssl`. */
export async function makeTlsFiles(dir: string): Promise<TlsFiles> {
  const files = { cert: `${dir}/server.crt`, key: `${dir}/server.key`, ca: `${dir}/ca.crt` };
  const ext = `${dir}/san.ext`;
  await Deno.writeTextFile(ext, "subjectAltName=IP:127.0.0.1\n");
  const steps = [
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      `${dir}/ca.key`,
      "-out",
      files.ca,
      "-days",
      "2",
      "-subj",
      "/CN=shark test CA",
    ],
    [
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      files.key,
      "-out",
      `${dir}/server.csr`,
      "-subj",
      "/CN=127.0.0.1",
    ],
    [
      "x509",
      "-req",
      "-in",
      `${dir}/server.csr`,
      "-CA",
      files.ca,
      "-CAkey",
      `${dir}/ca.key`,
      "-CAcreateserial",
      "-out",
      files.cert,
      "-days",
      "2",
      "-extfile",
      ext,
    ],
  ];
  for (const args of steps) {
    const output = await new Deno.Command("openssl", { args, stdout: "null", stderr: "piped" })
      .output();
    if (!output.success) {
      throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(output.stderr)}`);
    }
  }
  return files;
}

/** The output of one `redis-cli` run. */
export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** A `redis-server` process this test owns; disposing of it stops it. */
export class RedisServer {
  /** The loopback port; kept across {@link RedisServer.restart}. */
  readonly port: number;
  readonly options: RedisServerOptions;
  #caCert: string | undefined;
  #child: Deno.ChildProcess | undefined;

  private constructor(port: number, options: RedisServerOptions) {
    this.port = port;
    this.options = options;
  }

  /** Starts a server on a free port and waits until it answers PING. */
  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    const server = new RedisServer(freePort(), options);
    if (options.tls) server.#caCert = await Deno.readTextFile(options.tls.ca);
    await server.#spawn();
    return server;
  }

  /** `redis://127.0.0.1:PORT/DB` (`rediss://` with TLS, the password URL-encoded). */
  url(db = 0): string {
    const scheme = this.options.tls ? "rediss" : "redis";
    const password = this.options.password;
    const auth = password === undefined ? "" : `:${encodeURIComponent(password)}@`;
    return `${scheme}://${auth}127.0.0.1:${this.port}/${db}`;
  }

  /** The server's pid (while it runs). */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Whether the server process is running. */
  get running(): boolean {
    return this.#child !== undefined;
  }

  /** Stops the server: SIGTERM (SIGKILL with `kill`), then waits for its exit. */
  async stop(options: { kill?: boolean } = {}): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    try {
      child.kill(options.kill ? "SIGKILL" : "SIGTERM");
    } catch {
      // already exited
    }
    try {
      await within(child.status, STOP_TIMEOUT_MS, "redis-server exit");
    } catch {
      try {
        child.kill("SIGKILL");
      } catch {
        // exited meanwhile
      }
      await child.status;
    }
  }

  /** Starts the server again on the same port. */
  async restart(): Promise<void> {
    await this.stop();
    await this.#spawn();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** Runs `redis-cli -p PORT ...args`. */
  async cli(...args: string[]): Promise<CliResult> {
    const { password, tls } = this.options;
    const output = await new Deno.Command("redis-cli", {
      args: [
        "-h",
        "127.0.0.1",
        "-p",
        String(this.port),
        ...(tls ? ["--tls", "--cacert", tls.ca] : []),
        ...args,
      ],
      // REDISCLI_AUTH keeps the password off the command line and its warning off stderr.
      env: password === undefined ? {} : { REDISCLI_AUTH: password },
      stdin: "null",
    }).output();
    const decoder = new TextDecoder();
    return {
      code: output.code,
      stdout: decoder.decode(output.stdout).trim(),
      stderr: decoder.decode(output.stderr).trim(),
    };
  }

  /** Runs `redis-cli ... PUBLISH channel message` and returns the receiver count. */
  async publish(channel: string, message: string): Promise<number> {
    const result = await this.cli("PUBLISH", channel, message);
    if (result.code !== 0) throw new Error(`redis-cli PUBLISH failed: ${result.stderr}`);
    return Number(result.stdout);
  }

  /** `PUBSUB NUMSUB channel`: how many connections subscribe `channel`. */
  async numsub(channel: string): Promise<number> {
    const result = await this.cli("PUBSUB", "NUMSUB", channel);
    const lines = result.stdout.split("\n");
    return Number(lines[1]);
  }

  async #spawn(): Promise<void> {
    const { password, tls, args = [], spawn = discardingOutput } = this.options;
    const port = String(this.port);
    this.#child = spawn([
      "redis-server",
      ...(tls
        ? [
          "--port",
          "0",
          "--tls-port",
          port,
          "--tls-cert-file",
          tls.cert,
          "--tls-key-file",
          tls.key,
          "--tls-auth-clients",
          "no",
        ]
        : ["--port", port]),
      ...(password === undefined ? [] : ["--requirepass", password]),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      ...args,
    ]);
    try {
      await waitUntil(
        () => answersPing(this.port, this.options, this.#caCert, 500),
        READY_TIMEOUT_MS,
        `redis-server on port ${this.port} answering PING`,
      );
    } catch (error) {
      await this.stop({ kill: true });
      throw error;
    }
  }
}

function discardingOutput([program, ...args]: readonly string[]): Deno.ChildProcess {
  return new Deno.Command(program, { args, stdin: "null", stdout: "null", stderr: "null" })
    .spawn();
}
