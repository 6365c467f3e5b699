/**
 * The bystander of `deno task bench storm`: a client that stayed connected
 * while the others reconnect, in a process of its own, so that its latency
 * is the server's and not the load generator's (whose event loop is busy
 * with thousands of clients during a storm). It subscribes `topic`,
 * publishes to it through Redis every `intervalMs`, and keeps when each
 * message was published and received. It prints `ready` once subscribed;
 * a line on stdin stops it, and it prints the pairs as one JSON line.
 *
 * Usage: `deno run -A bench/_bystander.ts '{"port":9000,"redisPort":6379,"topic":"bench.bystander","intervalMs":10}'`
 *
 * @module
 */
import { connectClient, epochNow } from "./_raw_ws.ts";
import { encodeCommand, RespConnection } from "./_resp.ts";

/** What a bystander does. */
export interface BystanderSpec {
  readonly port: number;
  readonly redisPort: number;
  readonly topic: string;
  readonly intervalMs: number;
}

/** When a message was published and when it arrived, epoch milliseconds. */
export type Pair = [sentAt: number, receivedAt: number];

if (import.meta.main) {
  const spec: BystanderSpec = JSON.parse(Deno.args[0]);
  const pairs: Pair[] = [];
  const client = await connectClient("raw", {
    port: spec.port,
    sink: { message: (sentAt, now) => pairs.push([sentAt, now]) },
    timeoutMs: 15_000,
  });
  client.send(JSON.stringify({ event: "subscribe", subscription: spec.topic }));
  const reply = JSON.parse(await client.reply(15_000));
  if (reply.status !== "ok") throw new Error(`bystander not subscribed: ${JSON.stringify(reply)}`);
  const redis = await RespConnection.connect(spec.redisPort);
  let index = 0;
  const timer = setInterval(() => {
    const payload = `{"subscription":"${spec.topic}","data":{"t":${
      epochNow().toFixed(3)
    },"i":${index++}}}`;
    redis.send(encodeCommand(["PUBLISH", spec.topic, payload]), 1);
  }, spec.intervalMs);
  console.log("ready");
  for await (const _ of Deno.stdin.readable) break;
  clearInterval(timer);
  console.log(JSON.stringify(pairs));
  Deno.exit(0);
}
