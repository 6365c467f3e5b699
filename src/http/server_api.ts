/**
 * The server API's endpoints (SPEC section 13): `POST /presence`,
 * `/disconnect` and `/unsubscribe`, authorized exactly like `POST /publish`,
 * with JSON object bodies; what they do is the engine's (`control/`).
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import { ServerApiError } from "../control/command.ts";
import type { PresenceSummary } from "../presence/member.ts";
import { HttpErrorText } from "../protocol.ts";
import { authorizedBody, errorResponse, json } from "./respond.ts";

/** The paths of the server API. */
export const SERVER_API_PATHS: ReadonlySet<string> = new Set([
  "/presence",
  "/disconnect",
  "/unsubscribe",
]);

/**
 * What the endpoints need of the engine: each takes the request's body and
 * throws a `ServerApiError` for one it refuses.
 */
export interface ServerApiHost {
  presence(body: unknown): Promise<PresenceSummary>;
  disconnect(body: unknown): Promise<void>;
  unsubscribe(body: unknown): Promise<void>;
}

/** Serves a `POST` to one of {@link SERVER_API_PATHS}. */
export async function serverApiRequest(
  request: Request,
  path: string,
  host: { readonly publishSecret: string | null; readonly log: Logger; serverApi: ServerApiHost },
): Promise<Response> {
  const read = await authorizedBody(request, host.publishSecret);
  if (read instanceof Response) return read;
  const body = read.body;
  const api = host.serverApi;
  try {
    if (path === "/presence") return json(200, { status: "ok", ...await api.presence(body) });
    await (path === "/disconnect" ? api.disconnect(body) : api.unsubscribe(body));
    return json(200, { status: "ok" });
  } catch (error) {
    if (error instanceof ServerApiError) return errorResponse(error.status, error.message);
    host.log.error("server API {path} failed: {error}", { path, error: String(error) });
    return errorResponse(503, HttpErrorText.pubsubUnavailable);
  }
}
