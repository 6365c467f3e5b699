/**
 * Oversized frames against Shark's memory: N clients each announce one
 * binary frame of `--mb` megabytes (over `server.max_message_bytes`) and
 * then push its payload as fast as the server reads it. Prints the server's
 * RSS before and at its peak, and the close codes the clients got.
 *
 * ```sh
 * deno run -A bench/oversized.ts                                 # 100 clients, 50 MB, --transport shark
 * deno run -A bench/oversized.ts --transport deno --clients 10   # the runtime's path buffers first
 * ```
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { answersOk, freePort } from "../tests/helpers/loopback.ts";
import { waitUntil } from "../tests/helpers/wait.ts";
import { upgradeRequest } from "../tests/helpers/ws_frame.ts";
import { Child, rssKiB, treePids } from "./_proc.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    clients: { type: "string", default: "100" },
    mb: { type: "string", default: "50" },
    transport: { type: "string", default: "shark" },
  },
});
const clients = Number(values.clients);
const bytes = Number(values.mb) * 1_000_000;
const ROOT = fileURLToPath(new URL("../", import.meta.url));
const port = freePort();
const server = new Child({
  name: "shark",
  command: [
    Deno.execPath(),
    "run",
    "-A",
    "main.ts",
    "--port",
    String(port),
    "--transport",
    values.transport!,
    "--log-level",
    "warning",
  ],
  cpus: "0",
  cwd: ROOT,
});
const rss = () => treePids(server.pid).reduce((sum, pid) => sum + rssKiB(pid), 0);
try {
  await waitUntil(() => answersOk(`http://127.0.0.1:${port}/healthz`), 30_000, "shark ready");
} catch (error) {
  await server.stop();
  throw error;
}

/** One client: upgrade, announce the frame, then stream its payload until the server ends it. */
async function client(): Promise<number | null> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(upgradeRequest(port, "dGhlIHNhbXBsZSBub25jZQ=="));
  const head = new Uint8Array(1024);
  await conn.read(head);
  const header = new Uint8Array(14);
  header[0] = 0x82;
  header[1] = 0x80 | 127;
  new DataView(header.buffer).setBigUint64(2, BigInt(bytes));
  await conn.write(header);
  let code: number | null = null;
  // A server that never ends the connection itself is left after 20 s.
  const giveUp = setTimeout(() => conn.close(), 20_000);
  const reading = (async () => {
    const buffer = new Uint8Array(256);
    for (;;) {
      const read = await conn.read(buffer).catch(() => null);
      if (read === null) return;
      // A close frame: 0x88, length, then the code.
      if (buffer[0] === 0x88 && read >= 4) code = (buffer[2] << 8) | buffer[3];
    }
  })();
  const chunk = new Uint8Array(64 * 1024);
  let sent = 0;
  try {
    while (sent < bytes) {
      sent += await conn.write(chunk.subarray(0, Math.min(chunk.length, bytes - sent)));
    }
  } catch {
    // The server closed the connection.
  }
  await reading;
  clearTimeout(giveUp);
  try {
    conn.close();
  } catch {
    // Closed already.
  }
  return code;
}

const before = rss();
let peak = before;
const sampler = setInterval(() => peak = Math.max(peak, rss()), 50);
const started = performance.now();
const codes = await Promise.all(Array.from({ length: clients }, client));
clearInterval(sampler);
peak = Math.max(peak, rss());
const tally: Record<string, number> = {};
for (const code of codes) tally[String(code)] = (tally[String(code)] ?? 0) + 1;
console.log(JSON.stringify({
  transport: values.transport,
  clients,
  announced_mb: Number(values.mb),
  rss_before_mib: Math.round(before / 1024),
  rss_peak_mib: Math.round(peak / 1024),
  close_codes: tally,
  seconds: Math.round((performance.now() - started) / 100) / 10,
}));
await server.stop();
