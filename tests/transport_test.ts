/**
 * Shark's own transport on a real socket (SPEC section 9, "Transports";
 * section 8 for handshake_timeout and 1009): an echo server on it, tested
 * with clients of other stacks (Deno's WebSocket, Node's `ws`, Python's
 * `websockets`, Chromium) and with raw bytes for what no well-behaved client sends.
 */
import assert from "node:assert/strict";
import {
  type DropReason,
  type Handler,
  LISTEN_BACKLOG,
  type TransportOptions,
  TransportServer,
  upgradeWebSocket,
} from "../cli/transport/server.ts";
import { buildFrame, Opcode } from "../cli/transport/frame.ts";
import { readerFailure, type TransportFailure } from "../cli/transport/failure.ts";
import { FrameReader, type FrameSink } from "../cli/transport/frame_reader.ts";
import { closeQuietly, sendUntilDropped } from "./helpers/flood.ts";
import { ROOT } from "./helpers/process.ts";
import { makeTlsFiles, opensslAvailable } from "./helpers/redis_server.ts";
import { tempDir } from "./helpers/temp.ts";
import { toolAvailable } from "./helpers/tool.ts";
import { waitUntil } from "./helpers/wait.ts";
import { upgradeRequest } from "./helpers/ws_frame.ts";

const MAX_MESSAGE_BYTES = 1024 * 1024;

interface Echo extends AsyncDisposable {
  readonly server: TransportServer;
  readonly port: number;
  readonly drops: DropReason[];
  readonly fails: TransportFailure[];
}

/** A transport server on a free loopback port with the tests' limits, and `options` on top. */
function listenLoopback(
  options: Partial<TransportOptions>,
  handler: Handler,
): Promise<TransportServer> {
  return TransportServer.listen({
    hostname: "127.0.0.1",
    port: 0,
    handshakeTimeout: 10,
    maxMessageBytes: MAX_MESSAGE_BYTES,
    ...options,
  }, handler);
}

/**
 * An echo server: every message comes back as it came; `close:CODE` makes
 * the server close with that code. Plain requests get their method and path.
 */
async function echoServer(
  options: { handshakeTimeout?: number; tls?: { cert: string; key: string } } = {},
): Promise<Echo> {
  const drops: DropReason[] = [];
  const fails: TransportFailure[] = [];
  const server = await listenLoopback({
    handshakeTimeout: options.handshakeTimeout ?? 10,
    tls: options.tls,
    onDrop: (reason) => drops.push(reason),
    onFail: (failure) => fails.push(failure),
  }, async (request) => {
    if (request.headers.get("upgrade") !== "websocket") {
      const body = request.body ? (await request.bytes()).byteLength : 0;
      return Response.json({ method: request.method, path: new URL(request.url).pathname, body });
    }
    const { socket, response } = upgradeWebSocket(request, { idleTimeout: 30 });
    socket.binaryType = "arraybuffer";
    socket.addEventListener("message", (event) => {
      const data = (event as MessageEvent).data;
      if (typeof data === "string" && data.startsWith("close:")) {
        socket.close(Number(data.slice(6)), "asked to");
      } else socket.send(typeof data === "string" ? data : new Uint8Array(data));
    });
    return response;
  });
  return {
    server,
    port: server.addr.port,
    drops,
    fails,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
      assert.equal(server.scheduler.unexpectedCompletions, 0, "no write completion unwaited for");
    },
  };
}

const encode = (text: string) => new TextEncoder().encode(text);
const MASK = new Uint8Array([9, 8, 7, 6]);
const masked = (opcode: number, payload: Uint8Array | string, fin = true) =>
  buildFrame(opcode, typeof payload === "string" ? encode(payload) : payload, { fin, mask: MASK });

/** A client on raw bytes: it sends what it is told and reads frames (or the HTTP answer). */
class Raw implements AsyncDisposable {
  readonly conn: Deno.Conn;
  readonly frames: [number, string][] = [];
  #bytes = new Uint8Array(0);
  #reader: FrameReader | undefined;
  #ended = false;

  private constructor(conn: Deno.Conn) {
    this.conn = conn;
    this.#pump();
  }

  static async connect(port: number): Promise<Raw> {
    return new Raw(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  /** Connects and upgrades with RFC 6455's example key; resolves with the answer's head. */
  static async upgrade(
    port: number,
    headers: Record<string, string> = {},
  ): Promise<{ raw: Raw; head: string }> {
    const raw = await Raw.connect(port);
    await raw.write(upgradeRequest(port, "dGhlIHNhbXBsZSBub25jZQ==", headers));
    const head = await raw.head();
    return { raw, head };
  }

  async write(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? encode(data) : data;
    let at = 0;
    while (at < bytes.byteLength) at += await this.conn.write(bytes.subarray(at));
  }

  /** The HTTP answer's head; what follows it is read as frames. */
  async head(): Promise<string> {
    await this.until(() => new TextDecoder().decode(this.#bytes).includes("\r\n\r\n"));
    const text = new TextDecoder().decode(this.#bytes);
    const end = text.indexOf("\r\n\r\n") + 4;
    const rest = this.#bytes.slice(new TextEncoder().encode(text.slice(0, end)).byteLength);
    this.#reader = new FrameReader({ maxMessageBytes: 1 << 24, masked: false }, this.#sink());
    this.#reader.read(rest);
    return text.slice(0, end);
  }

  /** Everything received, as text (for plain HTTP answers). */
  get text(): string {
    return new TextDecoder().decode(this.#bytes);
  }

  /** Whether the server ended the connection. */
  get ended(): boolean {
    return this.#ended;
  }

  async until(ready: () => boolean, timeoutMs = 5000): Promise<void> {
    await waitUntil(ready, timeoutMs, () => `frames ${JSON.stringify(this.frames)}`);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.conn.close();
    } catch {
      // Closed by the server.
    }
    await this.until(() => this.#ended);
  }

  #sink(): FrameSink {
    return {
      onMessage: (data) => this.frames.push([Opcode.text, String(data)]),
      onPing: () => this.frames.push([Opcode.ping, ""]),
      onPong: (payload) => this.frames.push([Opcode.pong, new TextDecoder().decode(payload)]),
      onClose: (code, reason) => this.frames.push([Opcode.close, `${code} ${reason}`]),
      onFail: (code, reason) => this.frames.push([-1, `${code} ${reason}`]),
    };
  }

  async #pump(): Promise<void> {
    const buffer = new Uint8Array(65536);
    for (;;) {
      let read: number | null;
      try {
        read = await this.conn.read(buffer);
      } catch {
        read = null;
      }
      if (read === null) break;
      const chunk = buffer.slice(0, read);
      if (this.#reader) this.#reader.read(chunk);
      else {
        const all = new Uint8Array(this.#bytes.byteLength + read);
        all.set(this.#bytes);
        all.set(chunk, this.#bytes.byteLength);
        this.#bytes = all;
      }
    }
    this.#ended = true;
  }
}

const noSs = !(await toolAvailable("ss", { args: ["-V"], skips: "the listen backlog test" }));

Deno.test(
  "the listener asks the kernel to queue 4096 connections not yet accepted, not the runtime's 511: a reconnect storm waits, it is not dropped",
  {
    ignore: noSs,
  },
  async () => {
    await using echo = await echoServer();
    const { stdout } = await new Deno.Command("ss", { args: ["-ltnH", `sport = :${echo.port}`] })
      .output();
    // State, Recv-Q (waiting to be accepted), Send-Q (the backlog of a listening socket), ...
    const [, , backlog] = new TextDecoder().decode(stdout).trim().split(/\s+/);
    const somaxconn = Number(await Deno.readTextFile("/proc/sys/net/core/somaxconn"));
    assert.equal(Number(backlog), Math.min(LISTEN_BACKLOG, somaxconn));
  },
);

Deno.test("the 101 answer carries Sec-WebSocket-Accept of RFC 6455's example key", async () => {
  await using echo = await echoServer();
  const { raw, head } = await Raw.upgrade(echo.port);
  await using _ = raw;
  assert.match(head, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
  assert.match(head, /\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/i);
});

Deno.test("with an upgrade handler, an upgrade reaches it as header fields, no Request built; plain requests still get a Request", async () => {
  const seen: { origin: string | null; tags: string | null; absent: string | null }[] = [];
  const plain: string[] = [];
  const server = await listenLoopback({
    upgrade: (request) => {
      assert.ok(!(request instanceof Request), "the upgrade handler gets no Request");
      seen.push({
        origin: request.headers.get("Origin"),
        tags: request.headers.get("x-tag"),
        absent: request.headers.get("x-absent"),
      });
      const { socket, response } = upgradeWebSocket(request, { idleTimeout: 30 });
      socket.addEventListener("message", (event) => socket.send((event as MessageEvent).data));
      return response;
    },
  }, (request) => {
    plain.push(new URL(request.url).pathname);
    return Response.json({ plain: true });
  });
  try {
    const port = server.addr.port;
    const { raw, head } = await Raw.upgrade(port, {
      Origin: "https://app.example",
      "X-Tag": "a",
      "x-tag": "b",
    });
    await using _ = raw;
    assert.match(head, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
    assert.deepEqual(seen, [{ origin: "https://app.example", tags: "a, b", absent: null }]);
    await raw.write(masked(Opcode.text, "hello"));
    await raw.until(() => raw.frames.length > 0);
    assert.deepEqual(raw.frames[0], [Opcode.text, "hello"]);
    const answer = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.deepEqual(await answer.json(), { plain: true });
    assert.deepEqual(plain, ["/healthz"], "the handler saw the plain request only");
  } finally {
    await server.shutdown();
  }
});

Deno.test("with an admission gate, a connection is not read until it is let in; its upgrade arrives admitted, a plain request gives its place back", async () => {
  const held: PromiseWithResolvers<void>[] = [];
  let unused = 0;
  const admittedFlags: boolean[] = [];
  const server = await listenLoopback({
    admission: {
      enter() {
        const turn = Promise.withResolvers<void>();
        held.push(turn);
        return turn.promise;
      },
      unused: () => void unused++,
    },
    upgrade: (request, _info, admitted) => {
      admittedFlags.push(admitted);
      return upgradeWebSocket(request, { idleTimeout: 30 }).response;
    },
  }, () => Response.json({ plain: true }));
  try {
    const port = server.addr.port;
    const raw = await Raw.connect(port);
    await using _ = raw;
    await raw.write(upgradeRequest(port, "dGhlIHNhbXBsZSBub25jZQ==", {}));
    await waitUntil(() => held.length === 1, 5000, "the gate asked");
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(raw.text, "", "no answer while the gate holds it");
    assert.deepEqual(admittedFlags, []);
    held[0].resolve();
    assert.match(await raw.head(), /^HTTP\/1\.1 101/);
    assert.deepEqual(admittedFlags, [true]);
    const answer = fetch(`http://127.0.0.1:${port}/healthz`);
    await waitUntil(() => held.length === 2, 5000, "the gate asked again");
    held[1].resolve();
    assert.deepEqual(await (await answer).json(), { plain: true });
    await waitUntil(() => unused === 1, 5000, "the plain request's place given back");
  } finally {
    await server.shutdown();
  }
});

Deno.test("subprotocols a client offers are not selected: the answer has no Sec-WebSocket-Protocol", async () => {
  await using echo = await echoServer();
  const { raw, head } = await Raw.upgrade(echo.port, {
    "Sec-WebSocket-Protocol": "chat, superchat",
  });
  await using _ = raw;
  assert.match(head, /^HTTP\/1\.1 101/);
  assert.doesNotMatch(head.toLowerCase(), /sec-websocket-protocol/);
});

Deno.test("a wrong WebSocket version gets 426 naming version 13; a bad key gets 400", async () => {
  await using echo = await echoServer();
  for (
    const [extra, expected] of [
      [
        "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        /^HTTP\/1\.1 426[^]*sec-websocket-version: 13/i,
      ],
      ["Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short", /^HTTP\/1\.1 400/],
    ] as const
  ) {
    await using raw = await Raw.connect(echo.port);
    await raw.write(
      `GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n${extra}\r\n\r\n`,
    );
    await raw.until(() => raw.ended);
    assert.match(raw.text, expected);
  }
});

Deno.test("Deno's WebSocket: text and binary come back; the client's close code and reason are echoed", async () => {
  await using echo = await echoServer();
  const socket = new WebSocket(`ws://127.0.0.1:${echo.port}/`);
  socket.binaryType = "arraybuffer";
  const messages: unknown[] = [];
  const closed = new Promise<CloseEvent>((resolve) => socket.onclose = resolve);
  socket.onmessage = (event) => {
    messages.push(typeof event.data === "string" ? event.data : [...new Uint8Array(event.data)]);
    if (messages.length === 3) socket.close(4000, "deno done");
  };
  await new Promise((resolve) => socket.onopen = resolve);
  socket.send("hello");
  socket.send(new Uint8Array([1, 2, 3]));
  socket.send("é".repeat(40_000));
  const close = await closed;
  assert.deepEqual(messages, ["hello", [1, 2, 3], "é".repeat(40_000)]);
  assert.equal(close.code, 4000);
  assert.equal(close.reason, "deno done");
  assert.ok(close.wasClean);
});

Deno.test("a server-initiated close reaches Deno's WebSocket with its code and reason", async () => {
  await using echo = await echoServer();
  const socket = new WebSocket(`ws://127.0.0.1:${echo.port}/`);
  const closed = new Promise<CloseEvent>((resolve) => socket.onclose = resolve);
  await new Promise((resolve) => socket.onopen = resolve);
  socket.send("close:4010");
  const close = await closed;
  assert.equal(close.code, 4010);
  assert.equal(close.reason, "asked to");
  assert.ok(close.wasClean);
});

Deno.test("a fragmented message with a ping between its fragments: the pong at once, the message once whole", async () => {
  await using echo = await echoServer();
  const { raw } = await Raw.upgrade(echo.port);
  await using _ = raw;
  await raw.write(masked(Opcode.text, "Hello, ", false));
  await raw.write(masked(Opcode.ping, "mid"));
  await raw.until(() => raw.frames.length === 1);
  assert.deepEqual(raw.frames, [[Opcode.pong, "mid"]]);
  await raw.write(masked(Opcode.continuation, "wor", false));
  await raw.write(masked(Opcode.continuation, "ld"));
  await raw.until(() => raw.frames.length === 2);
  assert.deepEqual(raw.frames[1], [Opcode.text, "Hello, world"]);
});

for (
  const { rule, frames, code, reason, done } of [
    {
      rule: "an unmasked client frame is refused with 1002",
      frames: [buildFrame(Opcode.text, encode("not masked"))],
      code: 1002,
      reason: "unmasked frame from a client",
    },
    {
      rule: "a frame announcing more than max_message_bytes gets 1009 before its payload is sent",
      // A 50 MB binary frame: only its header is sent, and the answer comes anyway.
      frames: [new Uint8Array([0x82, 0xff, 0, 0, 0, 0, 0x02, 0xfa, 0xf0, 0x80, ...MASK])],
      code: 1009,
      reason: "message too big",
      done: (frames: Raw["frames"]) => frames.length > 0,
    },
  ] as const
) {
  Deno.test(rule, async () => {
    await using echo = await echoServer();
    assert.deepEqual(await answerTo(echo.port, [...frames], done), [
      [Opcode.close, `${code} ${reason}`],
    ]);
    assert.deepEqual(echo.fails, [readerFailure(code)]);
  });
}

Deno.test("invalid UTF-8 in a text message, whole or split over fragments, is refused with 1007", async () => {
  await using echo = await echoServer();
  for (
    const frames of [
      [masked(Opcode.text, new Uint8Array([0x68, 0xc3, 0x28]))],
      [
        masked(Opcode.text, "ok so far", false),
        masked(Opcode.continuation, new Uint8Array([0xf8])),
      ],
    ]
  ) {
    assert.deepEqual(await answerTo(echo.port, frames), [[Opcode.close, "1007 invalid UTF-8"]]);
  }
});

Deno.test("reserved bits and unknown opcodes are refused with 1002", async () => {
  await using echo = await echoServer();
  for (
    const frame of [
      buildFrame(Opcode.text, encode("x"), { mask: MASK, rsv: 4 }),
      buildFrame(0x3, encode("x"), { mask: MASK }),
    ]
  ) {
    const [[opcode, close]] = await answerTo(echo.port, [frame]);
    assert.equal(opcode, Opcode.close);
    assert.match(close, /^1002 /);
  }
});

/**
 * Upgrades `conn`, sends `failing` (a frame that fails the connection),
 * then pushes up to 50 MB more; resolves with the close code received and
 * how much of the 50 MB the client could write before the server dropped it.
 */
async function junkAfter(
  conn: Deno.Conn,
  port: number,
  failing: Uint8Array,
): Promise<{ code: number | null; sent: number }> {
  const JUNK_BYTES = 50_000_000;
  await conn.write(upgradeRequest(port, "dGhlIHNhbXBsZSBub25jZQ=="));
  let received = new Uint8Array(0);
  let code: number | null = null;
  const reading = (async () => {
    const buffer = new Uint8Array(4096);
    for (;;) {
      const read = await conn.read(buffer).catch(() => null);
      if (read === null) return;
      const all = new Uint8Array(received.byteLength + read);
      all.set(received);
      all.set(buffer.subarray(0, read), received.byteLength);
      received = all;
      const text = new TextDecoder("latin1").decode(received);
      const end = text.indexOf("\r\n\r\n");
      // The close frame after the 101 head: 0x88, its length, the code.
      if (end >= 0 && received.byteLength >= end + 8 && received[end + 4] === 0x88) {
        code = (received[end + 6] << 8) | received[end + 7];
      }
    }
  })();
  await waitUntil(() => new TextDecoder().decode(received).includes("\r\n\r\n"), 5000, "101");
  await conn.write(failing);
  const sent = await sendUntilDropped(conn, JUNK_BYTES);
  await reading;
  closeQuietly(conn);
  return { code, sent };
}

Deno.test("a failed connection (1002, 1007, 1009), plain or TLS, is read no further and dropped after its close frame", async () => {
  await using tls = await testCertificate();
  const failing: [number, Uint8Array][] = [
    [1002, buildFrame(Opcode.text, encode("x"), { mask: MASK, rsv: 4 })],
    [1007, masked(Opcode.text, new Uint8Array([0x68, 0xc3, 0x28]))],
    [1009, new Uint8Array([0x82, 0xff, 0, 0, 0, 0, 0x02, 0xfa, 0xf0, 0x80, ...MASK])],
  ];
  for (const secure of [false, true]) {
    await using echo = await echoServer(secure ? { tls } : {});
    for (const [expected, frame] of failing) {
      const conn = secure
        ? await Deno.connectTls({ hostname: "127.0.0.1", port: echo.port, caCerts: [tls.ca] })
        : await Deno.connect({ hostname: "127.0.0.1", port: echo.port });
      const started = performance.now();
      const { code, sent } = await junkAfter(conn, echo.port, frame);
      const what = `${secure ? "TLS" : "plain"} ${expected}`;
      assert.equal(code, expected, what);
      // Reading the junk and dropping it would take all 50 MB.
      assert.ok(sent < 50_000_000, `${what}: the client wrote ${sent} bytes before the drop`);
      assert.ok(performance.now() - started < 10_000, `${what}: dropped after the grace`);
    }
    assert.deepEqual(echo.fails, ["protocol_error", "invalid_utf8", "message_too_big"]);
  }
});

Deno.test("handshake_timeout: a connection that sends nothing, or half a request, is closed and counted", async () => {
  await using echo = await echoServer({ handshakeTimeout: 0.3 });
  await using silent = await Raw.connect(echo.port);
  await using half = await Raw.connect(echo.port);
  await half.write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgr");
  const started = Date.now();
  await silent.until(() => silent.ended && half.ended, 3000);
  assert.ok(Date.now() - started >= 250, "not before the timeout");
  assert.equal(silent.text, "");
  assert.deepEqual(echo.drops, ["handshake_timeout", "handshake_timeout"]);
});

Deno.test("handshake_timeout: a plain request whose body never completes is closed and counted", async () => {
  await using echo = await echoServer({ handshakeTimeout: 0.3 });
  await using raw = await Raw.connect(echo.port);
  await raw.write("POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly a part");
  await raw.until(() => raw.ended, 5000);
  assert.deepEqual(echo.drops, ["handshake_timeout"]);
});

Deno.test("a request head over 16 KiB gets 431", async () => {
  await using echo = await echoServer();
  await using raw = await Raw.connect(echo.port);
  await raw.write(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(17 * 1024)}\r\n\r\n`);
  await raw.until(() => raw.ended);
  assert.match(raw.text, /^HTTP\/1\.1 431 /);
});

Deno.test("plain HTTP on the same port: keep-alive, and a chunked request body", async () => {
  await using echo = await echoServer();
  await using raw = await Raw.connect(echo.port);
  await raw.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  await raw.until(() => raw.text.includes('"path":"/healthz"'));
  await raw.write(
    "POST /publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
  );
  await raw.until(() => raw.text.includes('"path":"/publish"'));
  assert.match(raw.text, /"method":"POST","path":"\/publish","body":11/);
  assert.ok(!raw.ended, "the connection stays open for more requests");
  const response = await fetch(`http://127.0.0.1:${echo.port}/other?x=1`);
  assert.deepEqual(await response.json(), { method: "GET", path: "/other", body: 0 });
});

/**
 * Upgrades a raw connection, sends `frames` and returns the frames that came back by the time the
 * server ended the connection (or `done` said so).
 */
async function answerTo(
  port: number,
  frames: Uint8Array[],
  done = (_frames: Raw["frames"], raw: Raw) => raw.ended,
): Promise<Raw["frames"]> {
  const { raw } = await Raw.upgrade(port);
  await using _ = raw;
  for (const frame of frames) await raw.write(frame);
  await raw.until(() => done(raw.frames, raw));
  return raw.frames;
}

/** Runs a client script of another stack; returns the JSON it printed. */
async function runClient(command: string, args: string[]): Promise<Record<string, unknown>> {
  const output = await new Deno.Command(command, { args, cwd: ROOT, stdin: "null" }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  assert.equal(output.code, 0, `${command} failed:\n${new TextDecoder().decode(output.stderr)}`);
  return JSON.parse(stdout.trim().split("\n").at(-1)!);
}

// The clients of other stacks are optional: a test whose client is missing is skipped loudly.
const PYTHON = "/usr/bin/python3";
// Deno runs itself for a `node` that PATH lacks: the test wants Node.js, not Deno again.
const noNode = !(await toolAvailable("node", {
  args: ["-e", "process.exit(process.versions.deno === undefined ? 0 : 1)"],
  name: "Node.js",
  skips: "Node's ws client test",
}));
const noPython = !(await toolAvailable(PYTHON, {
  args: ["-c", "import websockets"],
  name: "python3 websockets",
  skips: "the Python websockets tests",
}));
const noOpenssl = !(await opensslAvailable());
const CHROMIUM = "/usr/bin/chromium";
const noChromium = !(await toolAvailable(CHROMIUM, { skips: "Chromium's WebSocket test" }));

const otherStacks = [
  {
    name: "Node's ws client: echo, a message in three fragments, ping/pong, the close code",
    command: "node",
    ignore: noNode,
    script: "tests/clients/ws_client.mjs",
    expected: {
      text: "hello from node",
      binary: [1, 2, 3],
      fragmented: "fragmented",
      pong: "are you there",
      close: [4002, "node done"],
    },
  },
  {
    name:
      "Python's websockets client: echo, fragments, ping/pong, close code, 1009 for a message too big",
    command: PYTHON,
    ignore: noPython,
    script: "tests/clients/websockets_client.py",
    expected: {
      text: "hello from python",
      binary: [1, 2, 3],
      fragmented: "fragmented",
      pong: true,
      close: [4003, "python done"],
      too_big: [1009],
    },
  },
];

for (const { name, command, ignore, script, expected } of otherStacks) {
  Deno.test({
    name,
    ignore,
    fn: async () => {
      await using echo = await echoServer();
      assert.deepEqual(
        await runClient(command, [script, `ws://127.0.0.1:${echo.port}/`]),
        expected,
      );
    },
  });
}

/** A test CA and a certificate it signed for 127.0.0.1 (PEM text, and the CA's file). */
async function testCertificate(): Promise<
  { cert: string; key: string; ca: string; caFile: string } & AsyncDisposable
> {
  const directory = await tempDir("shark-tls-");
  const files = await makeTlsFiles(directory.path);
  return {
    cert: await Deno.readTextFile(files.cert),
    key: await Deno.readTextFile(files.key),
    ca: await Deno.readTextFile(files.ca),
    caFile: files.ca,
    [Symbol.asyncDispose]: () => directory[Symbol.asyncDispose](),
  };
}

Deno.test({
  name: "TLS: wss:// with Python's websockets, and https:// plain requests on the same port",
  ignore: noOpenssl || noPython,
}, async () => {
  await using tls = await testCertificate();
  await using echo = await echoServer({ tls });
  const seen = await runClient(PYTHON, [
    "tests/clients/websockets_client.py",
    `wss://127.0.0.1:${echo.port}/`,
    tls.caFile,
  ]);
  assert.equal(seen.text, "hello from python");
  assert.deepEqual(seen.fragmented, "fragmented");
  assert.deepEqual(seen.too_big, [1009]);
  using client = Deno.createHttpClient({ caCerts: [tls.ca] });
  const response = await fetch(`https://127.0.0.1:${echo.port}/healthz`, { client });
  assert.deepEqual(await response.json(), { method: "GET", path: "/healthz", body: 0 });
});

Deno.test({
  name:
    "TLS: half a request after the TLS handshake is closed after handshake_timeout; a handshake never started is counted",
  ignore: noOpenssl,
}, async () => {
  await using tls = await testCertificate();
  await using echo = await echoServer({ tls, handshakeTimeout: 0.3 });
  const conn = await Deno.connectTls({ hostname: "127.0.0.1", port: echo.port, caCerts: [tls.ca] });
  await conn.write(encode("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
  assert.equal(
    await conn.read(new Uint8Array(100)).catch(() => null),
    null,
    "closed by the server",
  );
  conn.close();
  // A client that never starts its TLS handshake: Deno cannot drop a TLS
  // stream before its handshake, so only the counting is seen here.
  const silent = await Deno.connect({ hostname: "127.0.0.1", port: echo.port });
  await waitUntil(() => echo.drops.length >= 2, 3000, () => `drops ${echo.drops}`);
  assert.deepEqual(echo.drops, ["handshake_timeout", "handshake_timeout"]);
  silent.close();
});

Deno.test({
  name: "Chromium's WebSocket: echo, the close code, and a refused subprotocol offer",
  ignore: noChromium,
}, async () => {
  const { chromium } = await import("playwright-core");
  await using echo = await echoServer();
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  try {
    const page = await browser.newPage();
    const seen = await page.evaluate(async (url: string) => {
      const result: Record<string, unknown> = {};
      const socket = new WebSocket(url);
      socket.binaryType = "arraybuffer";
      await new Promise((resolve) => socket.onopen = resolve);
      const next = () =>
        new Promise<unknown>((resolve) =>
          socket.onmessage = (event) =>
            resolve(typeof event.data === "string" ? event.data : [...new Uint8Array(event.data)])
        );
      socket.send("hello from chromium");
      result.text = await next();
      socket.send(new Uint8Array([4, 5, 6]));
      result.binary = await next();
      socket.send("x".repeat(100_000));
      result.large = ((await next()) as string).length;
      const closed = new Promise<CloseEvent>((resolve) => socket.onclose = resolve);
      socket.close(4004, "chromium done");
      const close = await closed;
      result.close = [close.code, close.reason, close.wasClean];
      // No subprotocol is ever selected: a browser that asks for one gives up.
      const offered = new WebSocket(url, ["chat"]);
      result.subprotocol = await new Promise((resolve) => {
        offered.onopen = () => resolve("opened");
        offered.onerror = () => resolve("refused by the browser");
      });
      return result;
    }, `ws://127.0.0.1:${echo.port}/`);
    assert.deepEqual(seen, {
      text: "hello from chromium",
      binary: [4, 5, 6],
      large: 100_000,
      close: [4004, "chromium done", true],
      subprotocol: "refused by the browser",
    });
  } finally {
    await browser.close();
  }
});
