/**
 * Oversized frames and silent connections on every path the CLI offers
 * (SPEC sections 8 and 9): `main.ts` on its default transport, one isolate
 * and `--workers 2`, refuses a frame over `max_message_bytes` from its
 * header and closes a connection whose request is not complete within
 * `server.handshake_timeout`; both are counted.
 */
import assert from "node:assert/strict";
import { freePort } from "./helpers/loopback.ts";
import { SharkProcess } from "./helpers/process.ts";
import { RawSocket } from "./helpers/raw_socket.ts";
import { tempFile } from "./helpers/temp.ts";
import { within } from "./helpers/wait.ts";

const HANDSHAKE_TIMEOUT_S = 0.5;

/** The header of a masked binary frame announcing 50 MB, sent without its payload. */
const FIFTY_MB_HEADER = new Uint8Array([
  0x82,
  0x80 | 127,
  ...[0, 0, 0, 0, 0x02, 0xfa, 0xf0, 0x80],
  ...[1, 2, 3, 4],
]);

/** Reads `conn` until the server ends it; resolves with the milliseconds that took. */
async function endedAfter(conn: Deno.Conn, started: number): Promise<number> {
  const buffer = new Uint8Array(1024);
  try {
    while (await conn.read(buffer) !== null) {
      // The server answers nothing before it closes; whatever comes is read and dropped.
    }
  } catch {
    // A reset ends the connection as well.
  }
  return performance.now() - started;
}

/** The sum of a counter's samples whose labels include `label` (every isolate's). */
function counted(exposition: string, name: string, label: string): number {
  return exposition.split("\n")
    .filter((line) => line.startsWith(`${name}{`) && line.includes(label))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(" ") + 1)), 0);
}

for (const workers of [[], ["--workers", "2"]]) {
  const path = workers.length ? "--workers 2" : "one isolate";
  Deno.test(`CLI default transport, ${path}: a frame over max_message_bytes gets 1009 from its header; requests not complete within handshake_timeout are closed; both counted`, async () => {
    const metricsPort = freePort();
    await using config = await tempFile({
      server: { port: 0, handshake_timeout: HANDSHAKE_TIMEOUT_S },
      pubsub: { adapter: "broadcast_channel", broadcast_channel: { name: crypto.randomUUID() } },
      metrics: { prometheus: { port: metricsPort } },
    });
    // No --transport: the CLI's default.
    await using shark = SharkProcess.deno([
      "run",
      "-A",
      "main.ts",
      "--config",
      config.path,
      ...workers,
    ]);
    const ready = workers.length ? /workers listening/ : /^listening on/;
    const listening = await shark.waitForLog((line) => ready.test(String(line.message)));
    const port = Number(listening.properties?.port);

    {
      using raw = await RawSocket.connect(port);
      assert.equal(raw.status, 101);
      await raw.conn.write(FIFTY_MB_HEADER);
      // The runtime's WebSocket would wait for the 50 MB; Shark's transport answers at once.
      assert.equal(await raw.closeCode(5000), 1009, "1009 without the payload ever sent");
    }

    const started = performance.now();
    using silent = await Deno.connect({ hostname: "127.0.0.1", port });
    using half = await Deno.connect({ hostname: "127.0.0.1", port });
    await half.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgr"));
    const [silentMs, halfMs] = await within(
      Promise.all([endedAfter(silent, started), endedAfter(half, started)]),
      10_000,
      "both unfinished requests closed",
    );
    for (const ms of [silentMs, halfMs]) {
      assert.ok(ms >= HANDSHAKE_TIMEOUT_S * 1000 * 0.8, `closed after ${ms} ms: not before`);
    }

    const exposition = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    // The writer the start-up self-check chose, in every isolate's log and metrics.
    const writer = Deno.env.get("SHARK_TRANSPORT_WRITER") === "stream" ? "stream" : "handle";
    await shark.waitForLog((line) => line.properties?.kind === writer);
    assert.equal(
      counted(exposition, "shark_transport_writer", `kind="${writer}"`),
      workers.length ? 2 : 1,
    );
    assert.equal(counted(exposition, "shark_transport_unexpected_write_completions_total", ""), 0);
    assert.equal(
      counted(exposition, "shark_connections_closed_total", 'reason="message_too_big"'),
      1,
    );
    assert.equal(
      counted(exposition, "shark_connections_rejected_total", 'reason="handshake_timeout"'),
      2,
    );
  });
}
