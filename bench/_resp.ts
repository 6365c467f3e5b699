/**
 * A minimal Redis client for the publishing side of the benchmarks: RESP
 * commands written in one batch, replies counted. A full client would spend
 * the generator's CPU on promises per command; here a burst of PUBLISH
 * commands is one write, so the publisher never limits what is measured.
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A reply: an integer, a (bulk or simple) string, `null`, an error, or an array of them. */
export type RespReply = number | string | null | Error | RespReply[];

interface Batch {
  readonly count: number;
  readonly replies: RespReply[];
  readonly resolve: (replies: RespReply[]) => void;
}

/**
 * Encodes one command as a RESP array of bulk strings. The parts must be
 * ASCII (as everything the benchmarks publish is): lengths are counted in
 * characters, which spares an encoding per part on the publishing path.
 */
export function encodeCommand(parts: readonly string[]): string {
  let text = `*${parts.length}\r\n`;
  for (const part of parts) text += `$${part.length}\r\n${part}\r\n`;
  return text;
}

/** A connection sending pipelined commands and reading their replies in order. */
export class RespConnection {
  readonly #conn: Deno.TcpConn;
  readonly #batches: Batch[] = [];
  #buffer = "";
  #closed = false;

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
    this.#readLoop();
  }

  /** Connects to Redis on 127.0.0.1:`port`. */
  static async connect(port: number): Promise<RespConnection> {
    return new RespConnection(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  /**
   * Sends `count` commands (each already {@link encodeCommand}d, concatenated)
   * in one write and resolves with their replies; `written` is called once
   * the bytes are with the kernel.
   */
  async send(encoded: string, count: number, written?: () => void): Promise<RespReply[]> {
    if (this.#closed) throw new Error("redis connection closed");
    const { promise, resolve } = Promise.withResolvers<RespReply[]>();
    this.#batches.push({ count, replies: [], resolve });
    const bytes = encoder.encode(encoded);
    for (let sent = 0; sent < bytes.byteLength;) {
      sent += await this.#conn.write(bytes.subarray(sent));
    }
    written?.();
    return await promise;
  }

  /** Runs one command. */
  async command(...parts: string[]): Promise<RespReply> {
    const [reply] = await this.send(encodeCommand(parts), 1);
    return reply;
  }

  /** Closes the connection. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#conn.close();
  }

  async #readLoop(): Promise<void> {
    const chunk = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const read = await this.#conn.read(chunk);
        if (read === null) break;
        this.#buffer += decoder.decode(chunk.subarray(0, read), { stream: true });
        this.#parse();
      }
    } catch {
      // Closed under the read: the pending replies fail below.
    }
    this.#closed = true;
    for (const batch of this.#batches.splice(0)) {
      while (batch.replies.length < batch.count) {
        batch.replies.push(new Error("redis connection closed"));
      }
      batch.resolve(batch.replies);
    }
  }

  /** Parses the complete replies in the buffer. */
  #parse(): void {
    let at = 0;
    const buffer = this.#buffer;
    while (at < buffer.length) {
      const parsed = parseReply(buffer, at);
      if (!parsed) break;
      at = parsed[1];
      const batch = this.#batches[0];
      if (!batch) continue;
      batch.replies.push(parsed[0]);
      if (batch.replies.length === batch.count) {
        this.#batches.shift();
        batch.resolve(batch.replies);
      }
    }
    this.#buffer = buffer.slice(at);
  }
}

/**
 * One reply at `at` (integers, strings, errors, bulk strings, arrays of them)
 * and where the next one starts; `undefined` while it is incomplete.
 */
function parseReply(buffer: string, at: number): [RespReply, number] | undefined {
  const lineEnd = buffer.indexOf("\r\n", at);
  if (lineEnd < 0) return undefined;
  const type = buffer[at];
  const line = buffer.slice(at + 1, lineEnd);
  const next = lineEnd + 2;
  if (type === ":") return [Number(line), next];
  if (type === "+") return [line, next];
  if (type === "-") return [new Error(line), next];
  if (type === "$") {
    const length = Number(line);
    if (length < 0) return [null, next];
    // Bench payloads are ASCII, so characters are bytes here.
    if (next + length + 2 > buffer.length) return undefined;
    return [buffer.slice(next, next + length), next + length + 2];
  }
  if (type === "*") {
    const items: RespReply[] = [];
    let position = next;
    for (let index = 0; index < Number(line); index++) {
      const item = parseReply(buffer, position);
      if (!item) return undefined;
      items.push(item[0]);
      position = item[1];
    }
    return [items, position];
  }
  return [new Error(`unexpected RESP type ${JSON.stringify(type)}`), next];
}
