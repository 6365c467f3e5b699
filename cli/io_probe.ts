/**
 * How far behind the runtime's I/O is, for the catch-up gate
 * (`server.catch_up_sessions`): a byte sent through a connection from this
 * process to itself (a Unix socket), and the time until it is read.
 * The runtime serves ready sockets in turn, so this byte waits as long as a
 * pub/sub socket's read does; a timer cannot tell (timers fire between the
 * turns, however many sockets wait).
 *
 * It costs nothing while nobody asks: a byte goes out only when
 * {@link IoProbe.behind} is called, at most every {@link PROBE_EVERY_MS}.
 *
 * @module
 */
import net from "node:net";

/** A new byte goes out at most this often (and only while the gate asks). */
export const PROBE_EVERY_MS = 5;

/** I/O is behind when a byte takes longer than this to be read. */
export const BEHIND_MS = 10;

/** A reading older than this says nothing: I/O is taken not to be behind. */
const STALE_MS = 100;

/**
 * The probe: `behind()` says whether the byte in flight has been on its way
 * longer than {@link BEHIND_MS}, or the last one took longer.
 *
 * @example
 * ```ts
 * const probe = await IoProbe.start();
 * if (probe.behind()) console.log("the event loop is behind on I/O");
 * probe.close();
 * ```
 */
export class IoProbe {
  readonly #sender: net.Socket;
  readonly #receiver: net.Socket;
  readonly #byte = new Uint8Array(1);
  /** When the byte in flight was sent, if one is. */
  #sentAt: number | undefined;
  /** When the last byte was sent; when the last one was read, and how long it took. */
  #lastSentAt = -Infinity;
  #lastReadAt = -Infinity;
  #lastDelay = 0;

  private constructor(sender: net.Socket, receiver: net.Socket) {
    this.#sender = sender;
    this.#receiver = receiver;
    receiver.on("data", () => {
      if (this.#sentAt === undefined) return;
      this.#lastReadAt = performance.now();
      this.#lastDelay = this.#lastReadAt - this.#sentAt;
      this.#sentAt = undefined;
    });
    // A probe that fails says nothing: I/O is then taken not to be behind.
    receiver.on("error", () => {});
    sender.on("error", () => {});
    sender.unref();
    receiver.unref();
  }

  /**
   * Connects the probe's two ends through a Unix socket in a temporary
   * directory, removed once they are (no TCP port taken: a port a
   * deployment or a test chose stays free); where Unix sockets are missing
   * or no temporary directory may be written (`--allow-write` not granted),
   * through 127.0.0.1 on a port the system picks.
   */
  static async start(): Promise<IoProbe> {
    let directory: string | undefined;
    try {
      directory = await Deno.makeTempDir({ prefix: "shark-probe-" });
      return await IoProbe.#connect({ path: `${directory}/probe.sock` });
    } catch {
      // No Unix sockets here, or no permission to write a temporary directory.
      return await IoProbe.#connect({ host: "127.0.0.1", port: 0 });
    } finally {
      if (directory) await Deno.remove(directory, { recursive: true }).catch(() => {});
    }
  }

  static async #connect(
    where: { path: string } | { host: string; port: number },
  ): Promise<IoProbe> {
    const listener = net.createServer();
    await new Promise<void>((resolve, reject) => {
      listener.once("error", reject);
      listener.listen(where, resolve);
    });
    try {
      const accepted = new Promise<net.Socket>((resolve) => listener.once("connection", resolve));
      const sender = "path" in where ? net.connect({ path: where.path }) : net.connect({
        ...where,
        port: (listener.address() as net.AddressInfo).port,
        noDelay: true,
      });
      await new Promise<void>((resolve, reject) => {
        sender.once("connect", resolve).once("error", reject);
      });
      return new IoProbe(sender, await accepted);
    } finally {
      listener.close();
    }
  }

  /** Whether a byte is on its way now. */
  get inFlight(): boolean {
    return this.#sentAt !== undefined;
  }

  /** Whether I/O is behind now; sends the next byte when it is time. */
  behind(): boolean {
    const now = performance.now();
    if (this.#sentAt !== undefined) return now - this.#sentAt > BEHIND_MS;
    if (now - this.#lastSentAt >= PROBE_EVERY_MS && !this.#sender.destroyed) {
      this.#sentAt = this.#lastSentAt = now;
      this.#sender.write(this.#byte);
    }
    return now - this.#lastReadAt < STALE_MS && this.#lastDelay > BEHIND_MS;
  }

  /** Closes both ends. */
  close(): void {
    this.#sender.destroy();
    this.#receiver.destroy();
  }
}
