/**
 * Reading a request or response body with a size limit: a publisher's
 * `POST /publish`, a service's callback answer, a JWKS document.
 *
 * @module
 */

/** The body of `message` was larger than allowed. */
export class BodyTooLarge extends Error {
  override readonly name = "BodyTooLarge";
}

/** Reads a request or response body as text, refusing more than `limit` bytes. */
export async function readLimited(message: Request | Response, limit: number): Promise<string> {
  const length = message.headers.get("content-length");
  const declared = Number(length);
  if (declared > limit) {
    await message.body?.cancel();
    throw new BodyTooLarge(`body of ${declared} bytes exceeds ${limit}`);
  }
  // A declared length is enforced by the HTTP layer: the runtime's own
  // text() is then safe, and much cheaper than reading the stream in JS.
  if (length !== null) return await message.text();
  if (!message.body) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of message.body) {
    size += chunk.byteLength;
    if (size > limit) throw new BodyTooLarge(`body exceeds ${limit} bytes`);
    chunks.push(chunk);
  }
  const all = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(all);
}
