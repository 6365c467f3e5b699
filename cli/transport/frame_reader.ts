/**
 * The reader of RFC 6455 frames (SPEC section 9, "Transports"): a state
 * machine that turns the bytes a client sends into messages and control
 * frames. No I/O, no timers, nothing about what the messages mean.
 *
 * It learns a frame's length from its header and refuses a frame (or a
 * fragmented message) over its limit before the payload is read.
 *
 * @module
 */
import { CloseCode, isValidCloseCode, MAX_CONTROL_PAYLOAD, Opcode, unmask } from "./frame.ts";

/** What a {@link FrameReader} found in the bytes it was given. */
export interface FrameSink {
  /** A complete text (string) or binary (bytes the sink may keep) message. */
  onMessage(data: string | Uint8Array): void;
  /** A ping; `payload` is the sink's to keep. */
  onPing(payload: Uint8Array): void;
  /** A pong. */
  onPong(payload: Uint8Array): void;
  /** A valid close frame: `code` is 1005 when it carried none. */
  onClose(code: number, reason: string): void;
  /**
   * The peer broke the protocol: the connection must be closed with `code`
   * (1002 protocol, 1007 invalid UTF-8, 1009 too big). The reader ignores
   * every byte after this.
   */
  onFail(code: number, reason: string): void;
}

/** Options of a {@link FrameReader}. */
export interface FrameReaderOptions {
  /** The largest message, in payload bytes of all its fragments. */
  readonly maxMessageBytes: number;
  /** Whether frames must be masked (a server reading a client) or must not be (a client). */
  readonly masked: boolean;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** A frame whose header has been read. */
interface Header {
  readonly fin: boolean;
  readonly opcode: number;
  readonly length: number;
  /** The masking key, or `undefined` for an unmasked frame. */
  readonly mask: Uint8Array | undefined;
}

/** The size of a header whose first two bytes are `b0`, `b1`. */
function headerSize(b1: number): number {
  const length = b1 & 0x7f;
  return 2 + (length === 126 ? 2 : length === 127 ? 8 : 0) + (b1 & 0x80 ? 4 : 0);
}

/**
 * Reads the frames of one connection from the bytes it receives, in
 * whatever pieces they arrive: fragmented messages are reassembled (control
 * frames may come between their fragments), text is checked to be UTF-8
 * (across fragments too, failing at the first invalid byte), and every rule
 * of RFC 6455 section 5 is enforced. Payloads are unmasked in place: the
 * chunks given to {@link FrameReader.read} are consumed.
 *
 * @example
 * ```ts
 * const reader = new FrameReader({ maxMessageBytes: 65536, masked: true }, sink);
 * reader.read(chunk);
 * ```
 */
export class FrameReader {
  readonly #options: FrameReaderOptions;
  readonly #sink: FrameSink;
  /** Bytes of a header split across chunks. */
  #head: Uint8Array | undefined;
  #headLength = 0;
  /** The frame whose payload is being read, and the payload so far. */
  #frame: Header | undefined;
  #payload: Uint8Array | undefined;
  #filled = 0;
  /** The opcode of the fragmented message in progress, 0 when none. */
  #messageOpcode = 0;
  #messageBytes = 0;
  #fragments: Uint8Array[] | undefined;
  #text: { decoder: TextDecoder; parts: string[] } | undefined;
  #failed = false;

  constructor(options: FrameReaderOptions, sink: FrameSink) {
    this.#options = options;
    this.#sink = sink;
  }

  /** Whether the reader has failed the connection. */
  get failed(): boolean {
    return this.#failed;
  }

  /** Bytes held for an incomplete frame: never more than its header and its (allowed) payload. */
  get buffered(): number {
    return this.#headLength + (this.#payload?.byteLength ?? 0) +
      (this.#fragments?.reduce((sum, part) => sum + part.byteLength, 0) ?? 0);
  }

  /** Reads the next bytes of the stream. */
  read(chunk: Uint8Array): void {
    let offset = 0;
    while (offset < chunk.length && !this.#failed) {
      if (this.#frame) {
        offset = this.#readPayload(chunk, offset);
        continue;
      }
      let bytes = chunk;
      let start = offset;
      if (
        this.#headLength > 0 || chunk.length - offset < 2 ||
        chunk.length - offset < headerSize(chunk[offset + 1])
      ) {
        const taken = this.#gatherHeader(chunk, offset);
        offset += taken;
        if (!this.#head || this.#headLength < 2 || this.#headLength < headerSize(this.#head[1])) {
          continue;
        }
        bytes = this.#head;
        start = 0;
        this.#headLength = 0;
      } else {
        offset += headerSize(chunk[offset + 1]);
      }
      const header = this.#parseHeader(bytes, start);
      if (!header) return;
      this.#begin(header);
      if (header.length === 0) this.#complete(new Uint8Array(0));
    }
  }

  /** Copies header bytes into `#head`; returns how many were taken from `chunk`. */
  #gatherHeader(chunk: Uint8Array, offset: number): number {
    const head = this.#head ??= new Uint8Array(14);
    let taken = 0;
    while (offset + taken < chunk.length) {
      if (this.#headLength >= 2 && this.#headLength >= headerSize(head[1])) break;
      head[this.#headLength++] = chunk[offset + taken++];
    }
    return taken;
  }

  /** Checks a complete header at `bytes[start]`; fails the connection and returns `undefined` when it breaks a rule. */
  #parseHeader(bytes: Uint8Array, start: number): Header | undefined {
    const b0 = bytes[start];
    const b1 = bytes[start + 1];
    const opcode = b0 & 0x0f;
    const fin = (b0 & 0x80) !== 0;
    const masked = (b1 & 0x80) !== 0;
    let length = b1 & 0x7f;
    let cursor = start + 2;
    if (length === 126) {
      length = (bytes[cursor] << 8) | bytes[cursor + 1];
      cursor += 2;
    } else if (length === 127) {
      const high = (bytes[cursor] << 24 | bytes[cursor + 1] << 16 | bytes[cursor + 2] << 8 |
        bytes[cursor + 3]) >>> 0;
      const low = (bytes[cursor + 4] << 24 | bytes[cursor + 5] << 16 | bytes[cursor + 6] << 8 |
        bytes[cursor + 7]) >>> 0;
      if (high >= 0x80000000) return this.#fail(CloseCode.protocolError, "invalid frame length");
      length = high * 2 ** 32 + low;
      cursor += 8;
    }
    if (b0 & 0x70) return this.#fail(CloseCode.protocolError, "reserved bits set");
    if (masked !== this.#options.masked) {
      return this.#fail(
        CloseCode.protocolError,
        masked ? "masked frame from the server" : "unmasked frame from a client",
      );
    }
    const control = opcode >= 0x8;
    if (control) {
      if (opcode > Opcode.pong) return this.#fail(CloseCode.protocolError, "unknown opcode");
      if (!fin) return this.#fail(CloseCode.protocolError, "fragmented control frame");
      if (length > MAX_CONTROL_PAYLOAD) {
        return this.#fail(CloseCode.protocolError, "control frame over 125 bytes");
      }
    } else if (opcode > Opcode.binary) {
      return this.#fail(CloseCode.protocolError, "unknown opcode");
    } else if (opcode === Opcode.continuation) {
      if (this.#messageOpcode === 0) {
        return this.#fail(CloseCode.protocolError, "continuation without a message");
      }
    } else if (this.#messageOpcode !== 0) {
      return this.#fail(CloseCode.protocolError, "new message inside a fragmented message");
    }
    if (!control && this.#messageBytes + length > this.#options.maxMessageBytes) {
      return this.#fail(CloseCode.tooBig, "message too big");
    }
    const mask = masked ? bytes.slice(cursor, cursor + 4) : undefined;
    return { fin, opcode, length, mask };
  }

  #begin(header: Header): void {
    this.#frame = header;
    this.#payload = undefined;
    this.#filled = 0;
  }

  /** Reads payload bytes of the current frame from `chunk`; returns the new offset. */
  #readPayload(chunk: Uint8Array, offset: number): number {
    const frame = this.#frame!;
    const wanted = frame.length - this.#filled;
    const available = chunk.length - offset;
    if (this.#filled === 0 && available >= wanted) {
      // The whole payload is in this chunk: no copy.
      const payload = chunk.subarray(offset, offset + wanted);
      if (frame.mask) unmask(payload, frame.mask, 0);
      this.#complete(payload);
      return offset + wanted;
    }
    const take = Math.min(wanted, available);
    const payload = this.#payload ??= new Uint8Array(frame.length);
    const part = chunk.subarray(offset, offset + take);
    if (frame.mask) unmask(part, frame.mask, this.#filled);
    payload.set(part, this.#filled);
    this.#filled += take;
    if (this.#filled === frame.length) this.#complete(payload);
    return offset + take;
  }

  /** A frame's payload is complete (unmasked); it may alias the chunk being read. */
  #complete(payload: Uint8Array): void {
    const frame = this.#frame!;
    this.#frame = undefined;
    this.#payload = undefined;
    switch (frame.opcode) {
      case Opcode.ping:
        this.#sink.onPing(payload.slice());
        return;
      case Opcode.pong:
        this.#sink.onPong(payload.slice());
        return;
      case Opcode.close:
        this.#closeFrame(payload);
        return;
    }
    if (frame.fin && frame.opcode !== Opcode.continuation) {
      this.#whole(frame.opcode, payload);
      return;
    }
    if (frame.opcode !== Opcode.continuation) this.#messageOpcode = frame.opcode;
    this.#messageBytes += payload.byteLength;
    if (this.#messageOpcode === Opcode.text) {
      const text = this.#text ??= {
        decoder: new TextDecoder("utf-8", { fatal: true }),
        parts: [],
      };
      try {
        text.parts.push(text.decoder.decode(payload, { stream: !frame.fin }));
      } catch {
        this.#fail(CloseCode.invalidData, "invalid UTF-8");
        return;
      }
    } else {
      (this.#fragments ??= []).push(payload.slice());
    }
    if (frame.fin) this.#endMessage();
  }

  #whole(opcode: number, payload: Uint8Array): void {
    if (opcode === Opcode.binary) {
      this.#sink.onMessage(payload.slice());
      return;
    }
    let text: string;
    try {
      text = strictUtf8.decode(payload);
    } catch {
      this.#fail(CloseCode.invalidData, "invalid UTF-8");
      return;
    }
    this.#sink.onMessage(text);
  }

  #endMessage(): void {
    const text = this.#text;
    const fragments = this.#fragments;
    this.#messageOpcode = 0;
    this.#messageBytes = 0;
    this.#text = undefined;
    this.#fragments = undefined;
    if (text) {
      this.#sink.onMessage(text.parts.join(""));
      return;
    }
    const all = new Uint8Array(fragments!.reduce((sum, part) => sum + part.byteLength, 0));
    let at = 0;
    for (const part of fragments!) {
      all.set(part, at);
      at += part.byteLength;
    }
    this.#sink.onMessage(all);
  }

  #closeFrame(payload: Uint8Array): void {
    if (payload.byteLength === 0) {
      this.#sink.onClose(CloseCode.noStatus, "");
      return;
    }
    if (payload.byteLength === 1) {
      this.#fail(CloseCode.protocolError, "close frame with a one-byte payload");
      return;
    }
    const code = (payload[0] << 8) | payload[1];
    if (!isValidCloseCode(code)) {
      this.#fail(CloseCode.protocolError, `invalid close code ${code}`);
      return;
    }
    let reason: string;
    try {
      reason = strictUtf8.decode(payload.subarray(2));
    } catch {
      this.#fail(CloseCode.invalidData, "invalid UTF-8 in the close reason");
      return;
    }
    this.#sink.onClose(code, reason);
  }

  #fail(code: number, reason: string): undefined {
    this.#failed = true;
    this.#frame = undefined;
    this.#payload = undefined;
    this.#fragments = undefined;
    this.#text = undefined;
    this.#head = undefined;
    this.#headLength = 0;
    this.#sink.onFail(code, reason);
    return undefined;
  }
}
