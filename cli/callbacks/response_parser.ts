/**
 * An HTTP/1.1 response read off a callback connection (RFC 9112), as bytes
 * arrive: the status line and header fields, then the body framed by
 * `Transfer-Encoding: chunked`, `Content-Length` or the end of the
 * connection, within a size limit. Informational (1xx) answers are skipped.
 * Pure: it knows nothing of sockets, so that every framing is unit-tested.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { headEnd } from "../transport/handshake.ts";
import { join } from "../transport/outbox.ts";

/** The largest response head accepted (status line and header fields). */
export const MAX_RESPONSE_HEAD_BYTES = 64 * 1024;
/** The longest chunk-size line or trailer field accepted. */
const MAX_LINE_BYTES = 4096;

/** A response's status line and header fields. */
export interface ResponseHead {
  readonly status: number;
  /** Header fields by lower-cased name; repeated fields joined with `, `. */
  readonly fields: ReadonlyMap<string, string>;
  /** Whether the connection may carry another request after this response. */
  readonly keepAlive: boolean;
}

/** The response was not HTTP/1.1 as this parser reads it, or its body was too large. */
export class ResponseError extends Error {
  override readonly name = "ResponseError";
}

type Framing =
  | { readonly kind: "length"; left: number }
  | { readonly kind: "chunked" }
  | { readonly kind: "close" };

const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/;
const FIELD_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HEX = /^[0-9A-Fa-f]{1,8}$/;

function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1");
}

/** Parses a complete head (the blank line included). */
export function parseResponseHead(bytes: Uint8Array): ResponseHead {
  const lines = latin1(bytes).split("\r\n");
  const status = STATUS_LINE.exec(lines[0]);
  if (!status) throw new ResponseError(`malformed status line ${JSON.stringify(lines[0])}`);
  const fields = new Map<string, string>();
  for (const line of lines.slice(1, -2)) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon);
    if (colon <= 0 || !FIELD_NAME.test(name)) {
      throw new ResponseError(`malformed header field ${JSON.stringify(line.slice(0, 100))}`);
    }
    const key = name.toLowerCase();
    const value = line.slice(colon + 1).trim();
    const previous = fields.get(key);
    fields.set(key, previous === undefined ? value : `${previous}, ${value}`);
  }
  const connection = fields.get("connection")?.toLowerCase() ?? "";
  const keepAlive = status[1] === "1"
    ? !/(^|,)\s*close\s*(,|$)/.test(connection)
    : /(^|,)\s*keep-alive\s*(,|$)/.test(connection);
  return { status: Number(status[2]), fields, keepAlive };
}

/** How the body of a response to a POST is delimited (RFC 9112 section 6.3). */
function framingOf(head: ResponseHead): Framing {
  if (head.status === 204 || head.status === 304) return { kind: "length", left: 0 };
  const coding = head.fields.get("transfer-encoding");
  if (coding !== undefined) {
    const last = coding.split(",").at(-1)!.trim().toLowerCase();
    return last === "chunked" ? { kind: "chunked" } : { kind: "close" };
  }
  const length = head.fields.get("content-length");
  if (length === undefined) return { kind: "close" };
  const values = new Set(length.split(",").map((value) => value.trim()));
  const [only] = values;
  if (values.size !== 1 || !/^\d{1,15}$/.test(only)) {
    throw new ResponseError(`invalid content-length ${JSON.stringify(length)}`);
  }
  return { kind: "length", left: Number(only) };
}

/**
 * Reads one response. {@link feed} it every chunk the connection delivers
 * until it returns `true`; {@link end} when the connection ends first.
 *
 * @example
 * ```ts
 * const parser = new ResponseParser(1024);
 * parser.feed(new TextEncoder().encode("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")); // true
 * parser.head?.status; // 200
 * parser.text(); // "{}"
 * ```
 */
export class ResponseParser {
  /** The final (non-1xx) head, once read. */
  head: ResponseHead | undefined;
  /** Whether any byte of the response has arrived. */
  received = false;
  readonly #maxBodyBytes: number;
  #pending: Uint8Array | undefined;
  #framing: Framing | undefined;
  /** Chunked: the data bytes left in the current chunk; 0 while reading a line. */
  #chunkLeft = 0;
  /** Chunked: the CRLF after a chunk's data is still to come. */
  #chunkEnd = false;
  #trailers = false;
  #body: Uint8Array[] = [];
  #bodyBytes = 0;
  #done = false;
  /** Bytes that came after the response: a connection carrying them cannot be reused. */
  extra = false;

  /** @param maxBodyBytes a larger body fails the response. */
  constructor(maxBodyBytes: number) {
    this.#maxBodyBytes = maxBodyBytes;
  }

  /** Takes the next bytes; `true` once the response is complete. Throws a {@link ResponseError}. */
  feed(chunk: Uint8Array): boolean {
    if (this.#done) {
      this.extra ||= chunk.byteLength > 0;
      return true;
    }
    this.received = true;
    let bytes = this.#pending ? join([this.#pending, chunk]) : chunk;
    this.#pending = undefined;
    while (bytes.byteLength > 0 && !this.#done) bytes = this.#step(bytes);
    this.extra ||= this.#done && bytes.byteLength > 0;
    return this.#done;
  }

  /**
   * The connection ended: completes a body read to the end of the
   * connection; throws when the response was cut short.
   */
  end(): void {
    if (this.#done) return;
    if (this.#framing?.kind === "close" && !this.#pending) {
      this.#done = true;
      return;
    }
    throw new ResponseError("the connection ended before the response was complete");
  }

  /** The body as text (UTF-8, a leading BOM dropped, as `Response.text()` reads it). */
  text(): string {
    const body = this.#body.length === 1 ? this.#body[0] : join(this.#body);
    return decoder.decode(body);
  }

  /** Consumes what it can of `bytes`; returns the rest. */
  #step(bytes: Uint8Array): Uint8Array {
    if (!this.#framing) return this.#readHead(bytes);
    const framing = this.#framing;
    if (framing.kind === "chunked") return this.#readChunked(bytes);
    if (framing.kind === "close") {
      this.#take(bytes);
      return bytes.subarray(bytes.byteLength);
    }
    const taken = Math.min(framing.left, bytes.byteLength);
    this.#take(bytes.subarray(0, taken));
    framing.left -= taken;
    if (framing.left === 0) this.#done = true;
    return bytes.subarray(taken);
  }

  #readHead(bytes: Uint8Array): Uint8Array {
    const end = headEnd(bytes);
    if (end < 0 || end > MAX_RESPONSE_HEAD_BYTES) {
      if (end > 0 || bytes.byteLength > MAX_RESPONSE_HEAD_BYTES) {
        throw new ResponseError(`response head over ${MAX_RESPONSE_HEAD_BYTES} bytes`);
      }
      this.#pending = bytes;
      return bytes.subarray(bytes.byteLength);
    }
    const head = parseResponseHead(bytes.subarray(0, end));
    // 101 would switch protocols: no POST of ours asks for it.
    if (head.status >= 100 && head.status <= 199 && head.status !== 101) {
      return bytes.subarray(end);
    }
    if (head.status < 200) throw new ResponseError(`unexpected status ${head.status}`);
    this.head = head;
    this.#framing = framingOf(head);
    if (this.#framing.kind === "length") {
      if (this.#framing.left > this.#maxBodyBytes) this.#tooLarge();
      if (this.#framing.left === 0) this.#done = true;
    }
    return bytes.subarray(end);
  }

  #readChunked(bytes: Uint8Array): Uint8Array {
    if (this.#chunkLeft > 0) {
      const taken = Math.min(this.#chunkLeft, bytes.byteLength);
      this.#take(bytes.subarray(0, taken));
      this.#chunkLeft -= taken;
      if (this.#chunkLeft === 0) this.#chunkEnd = true;
      return bytes.subarray(taken);
    }
    const newline = bytes.indexOf(0x0a);
    if (newline < 0) {
      if (bytes.byteLength > MAX_LINE_BYTES) throw new ResponseError("chunk line too long");
      this.#pending = bytes;
      return bytes.subarray(bytes.byteLength);
    }
    const line = latin1(bytes.subarray(0, newline)).replace(/\r$/, "");
    const rest = bytes.subarray(newline + 1);
    if (this.#chunkEnd) {
      if (line !== "") throw new ResponseError("no CRLF after chunk data");
      this.#chunkEnd = false;
    } else if (this.#trailers) {
      if (line === "") this.#done = true;
    } else {
      const size = line.split(";")[0].trim();
      if (!HEX.test(size)) throw new ResponseError(`invalid chunk size ${JSON.stringify(size)}`);
      this.#chunkLeft = parseInt(size, 16);
      if (this.#chunkLeft === 0) this.#trailers = true;
    }
    return rest;
  }

  #take(bytes: Uint8Array): void {
    if (bytes.byteLength === 0) return;
    this.#bodyBytes += bytes.byteLength;
    if (this.#bodyBytes > this.#maxBodyBytes) this.#tooLarge();
    this.#body.push(bytes);
  }

  #tooLarge(): never {
    throw new ResponseError(`the reply is over ${this.#maxBodyBytes} bytes`);
  }
}

const decoder = new TextDecoder();
