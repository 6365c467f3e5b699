/**
 * What the raw baselines (`baseline_raw.ts` on Deno, `baseline_bun.ts` on
 * Bun) share: their command line and the subset of the client protocol they
 * speak. `auth` is always ok, `subscribe` ok once the topic is joined,
 * `ping` answered; with `--callbacks ORIGIN`, `auth` and the subscribe of a
 * `secure.` topic first POST to ORIGIN's `/auth`, `/authorize` and
 * `/before_subscribe` like Shark does in the bench config (one `fetch`
 * each, the reply read with `json()`). Runtime-neutral: `node:util` and
 * `fetch` only, so that both runtimes load it.
 *
 * @module
 */
import { parseArgs } from "node:util";

/** A baseline's options. */
export interface BaselineOptions {
  readonly port: number;
  readonly redisUrl: string;
  /** The callback service's origin, when the baseline makes callbacks. */
  readonly callbacks?: string;
}

/** Reads `--port`, `--redis-url` and `--callbacks` from `args`. */
export function baselineOptions(args: string[]): BaselineOptions {
  const { values } = parseArgs({
    args,
    options: {
      port: { type: "string", default: "9100" },
      "redis-url": { type: "string", default: "redis://127.0.0.1:6379" },
      callbacks: { type: "string" },
    },
  });
  return {
    port: Number(values.port),
    redisUrl: values["redis-url"]!,
    callbacks: values.callbacks,
  };
}

/** One client connection as the protocol sees it. */
export interface BaselineSession {
  /** What the ticket callback answered, once authenticated. */
  userId?: unknown;
  send(text: string): void;
  /** Resolves once the topic's Redis channel is subscribed and the connection is in it. */
  join(topic: string): Promise<void>;
}

/** POSTs a JSON body to the callback service and reads its JSON reply, as plainly as possible. */
async function callback(
  origin: string,
  path: string,
  body: unknown,
): Promise<Record<string, unknown>> {
  const response = await fetch(`${origin}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return await response.json();
}

/** Answers one client frame; a frame that is not JSON is ignored. */
export async function answer(
  text: string,
  session: BaselineSession,
  options: BaselineOptions,
): Promise<void> {
  let request: Record<string, unknown>;
  try {
    request = JSON.parse(text);
  } catch {
    return;
  }
  const origin = options.callbacks;
  switch (request.event) {
    case "auth":
      if (origin) {
        session.userId = (await callback(origin, "/auth", { ticket: request.ticket })).user_id;
      }
      session.send('{"event":"auth","status":"ok"}');
      return;
    case "ping":
      session.send(JSON.stringify({ event: "pong", data: request.data ?? null }));
      return;
    case "subscribe": {
      const topic = String(request.subscription);
      // As in Shark's bench config, only the `secure` service has callbacks.
      if (origin && topic.startsWith("secure.")) {
        const body = { subscription: topic, user_id: session.userId };
        await callback(origin, "/authorize", body);
        await callback(origin, "/before_subscribe", body);
      }
      await session.join(topic);
      session.send(JSON.stringify({ event: "subscribe", subscription: topic, status: "ok" }));
      return;
    }
  }
}
