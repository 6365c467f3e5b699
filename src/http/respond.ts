/**
 * What Shark's plain HTTP endpoints share: JSON answers, the JSON error
 * answer, and the bearer secret that `POST /publish` and the server API
 * (SPEC sections 3 and 13) are authorized with.
 *
 * @module
 */
import { constantTimeEqual } from "../auth/constant_time.ts";
import type { JsonObject } from "../json.ts";
import { HttpErrorText } from "../protocol.ts";

/** A JSON answer. */
export function json(status: number, body: JsonObject, headers?: HeadersInit): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** Shark's JSON error answer: `{"status":"error","error":...}`. */
export function errorResponse(status: number, error: string, headers?: HeadersInit): Response {
  return json(status, { status: "error", error }, headers);
}

/** The credentials of an `Authorization: Bearer ...` header; the scheme is case-insensitive (RFC 9110). */
function bearerToken(headers: Headers): string | undefined {
  const match = /^bearer +(.+)$/i.exec(headers.get("authorization") ?? "");
  return match?.[1];
}

/**
 * The refusal of a request not authorized by `publish_api.secret`: 404 when
 * no secret is set (the endpoint does not exist), 401 without the right
 * bearer secret; `undefined` when it is authorized.
 */
export async function refusal(
  request: Request,
  secret: string | null,
): Promise<Response | undefined> {
  if (secret === null) return errorResponse(404, HttpErrorText.notFound);
  if (constantTimeEqual(bearerToken(request.headers) ?? "", secret)) return undefined;
  await request.body?.cancel();
  return errorResponse(401, HttpErrorText.badSecret, { "www-authenticate": "Bearer" });
}
