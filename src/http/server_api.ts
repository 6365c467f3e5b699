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
import { HttpErrorText, MAX_PUBLISH_BYTES } from "../protocol.ts";
import { BodyTooLarge, readLimited } from "./read_limited.ts";
import { errorResponse, json, refusal } from "./respond.ts";

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
  const refused = await refusal(request, host.publishSecret);
  if (refused) return refused;
  let body: unknown;
  try {
    body = JSON.parse(await readLimited(request, MAX_PUBLISH_BYTES));
  } catch (error) {
    if (error instanceof BodyTooLarge) return errorResponse(413, HttpErrorText.bodyTooLarge);
    return errorResponse(400, HttpErrorText.notJson);
  }
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
