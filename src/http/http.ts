/**
 * Shark's plain HTTP endpoints (SPEC sections 3, 7 and 13): `GET /healthz`,
 * `POST /publish`, the server API (`server_api.ts`), and a JSON error for any
 * other request that is not a WebSocket upgrade.
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import { InvalidEnvelope } from "../delivery/envelope.ts";
import { FanoutQueueFull } from "../delivery/fanout_queue.ts";
import { PublishOutcomeUnknown } from "../pubsub/pubsub.ts";
import { HttpErrorText } from "../protocol.ts";
import { authorizedBody, errorResponse, json } from "./respond.ts";
import { SERVER_API_PATHS, type ServerApiHost, serverApiRequest } from "./server_api.ts";

export { errorResponse } from "./respond.ts";
export type { ServerApiHost } from "./server_api.ts";

/** The body of `GET /healthz`: 200 when `status` is "ok", else 503. */
export type HealthReport = {
  readonly status: "ok" | "unavailable";
  /** The engine's state: starting, ready, degraded, failed or stopping. */
  readonly state: string;
  /** The pub/sub adapter's name. */
  readonly adapter: string;
  readonly pubsub: "ok" | "down";
  readonly connections: number;
  readonly subscriptions: number;
  readonly topics: number;
};

/** What the endpoints need of the engine. */
export interface HttpHost {
  /** Bearer secret of `POST /publish`; `null` disables it. */
  readonly publishSecret: string | null;
  readonly log: Logger;
  /** The engine's health now. */
  health(): HealthReport;
  /**
   * Publishes envelopes; throws an {@link InvalidEnvelope} for a bad one, a
   * {@link FanoutQueueFull} while the fan-out queue is full.
   */
  publish(envelopes: unknown): Promise<number>;
  /** The server API (SPEC section 13), authorized like `publish`. */
  readonly serverApi: ServerApiHost;
}

/** Serves a request that is not a WebSocket upgrade. */
export function serveHttp(request: Request, host: HttpHost): Response | Promise<Response> {
  const path = new URL(request.url).pathname;
  if (path === "/healthz" && (request.method === "GET" || request.method === "HEAD")) {
    const report = host.health();
    return json(report.status === "ok" ? 200 : 503, report);
  }
  if (path === "/publish" || SERVER_API_PATHS.has(path)) {
    if (request.method !== "POST") {
      return errorResponse(405, HttpErrorText.usePost, { allow: "POST" });
    }
    return path === "/publish"
      ? publishRequest(request, host)
      : serverApiRequest(request, path, host);
  }
  if (path === "/" && request.method === "GET") {
    return errorResponse(426, HttpErrorText.useWebSocket, { upgrade: "websocket" });
  }
  return errorResponse(404, HttpErrorText.notFound);
}

async function publishRequest(request: Request, host: HttpHost): Promise<Response> {
  const read = await authorizedBody(request, host.publishSecret);
  if (read instanceof Response) return read;
  const body = read.body;
  if (Array.isArray(body) && body.length === 0) {
    return errorResponse(400, HttpErrorText.nothingToPublish);
  }
  try {
    const published = await host.publish(body);
    return json(200, { status: "ok", published });
  } catch (error) {
    if (error instanceof InvalidEnvelope) return errorResponse(400, error.message);
    if (error instanceof FanoutQueueFull) {
      return errorResponse(503, HttpErrorText.queueFull, { "retry-after": "1" });
    }
    host.log.error("publish failed: {error}", { error: String(error) });
    if (error instanceof PublishOutcomeUnknown) {
      return errorResponse(504, HttpErrorText.publishOutcomeUnknown);
    }
    return errorResponse(503, HttpErrorText.pubsubUnavailable);
  }
}
