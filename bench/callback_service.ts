/**
 * The application service of the `subrate` benchmark, on loopback: it
 * answers ticket validation with `{"status":"ok","user_id":TICKET}` and every
 * other callback (authorizer, before_subscribe, ...) with `{"status":"ok"}`,
 * as fast as `Deno.serve` allows. `GET /stats` returns the calls per path,
 * so that a run can show the callbacks really happened.
 *
 * Usage: `deno run -A bench/callback_service.ts --port 9200`
 *
 * @module
 */
import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: Deno.args,
  options: { port: { type: "string", default: "9200" } },
});

const calls: Record<string, number> = {};
const headers = { "content-type": "application/json" };
const OK = '{"status":"ok"}';

Deno.serve({
  hostname: "127.0.0.1",
  port: Number(values.port),
  onListen: ({ port }) => console.error(JSON.stringify({ message: "listening", port })),
}, async (request) => {
  const path = new URL(request.url).pathname;
  if (request.method === "GET") {
    return new Response(path === "/stats" ? JSON.stringify(calls) : OK, { headers });
  }
  calls[path] = (calls[path] ?? 0) + 1;
  const text = await request.text();
  if (path !== "/auth") return new Response(OK, { headers });
  let ticket: unknown;
  try {
    ticket = JSON.parse(text).ticket;
  } catch {
    return new Response('{"status":"error","error":"Body is not JSON."}', { headers });
  }
  return new Response(JSON.stringify({ status: "ok", user_id: ticket }), { headers });
});
