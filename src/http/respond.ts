/**
 * What Shark's plain HTTP endpoints share: JSON answers, the JSON error
 * answer, and the bearer secret that `POST /publish` and the server API
 * (SPEC sections 3 and 13) are authorized with.
 *
 * @module
 */
import { constantTimeEqual } from "../auth/constant_time.ts";
import type { JsonObject } from "../json.ts";
import { HttpErrorText, MAX_PUBLISH_BYTES } from "../protocol.ts";
import { BodyTooLarge, readLimited } from "./read_limited.ts";

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
 * bearer secret; `undefined`, at once, when it is authorized: the body is
 * read (or cancelled, when too large) in the same task, since a body stream
 * of the CLI's transport that is cancelled a task later can fail on data
 * already under way.
 */
export function refusal(request: Request, secret: string | null): Promise<Response> | undefined {
  if (secret === null) return Promise.resolve(errorResponse(404, HttpErrorText.notFound));
  if (constantTimeEqual(bearerToken(request.headers) ?? "", secret)) return undefined;
  return request.body === null
    ? Promise.resolve(unauthorized())
    : request.body.cancel().then(unauthorized);
}

function unauthorized(): Response {
  return errorResponse(401, HttpErrorText.badSecret, { "www-authenticate": "Bearer" });
}

/**
 * The JSON body of a `POST` authorized by `publish_api.secret` (at most
 * {@link MAX_PUBLISH_BYTES}), or the answer refusing it: 404/401 as
 * {@link refusal} says, 413 when too large, 400 when not JSON.
 */
export async function authorizedBody(
  request: Request,
  secret: string | null,
): Promise<{ readonly body: unknown } | Response> {
  const refused = refusal(request, secret);
  if (refused) return refused;
  try {
    return { body: JSON.parse(await readLimited(request, MAX_PUBLISH_BYTES)) };
  } catch (error) {
    if (error instanceof BodyTooLarge) return errorResponse(413, HttpErrorText.bodyTooLarge);
    return errorResponse(400, HttpErrorText.notJson);
  }
}
