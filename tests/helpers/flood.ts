/**
 * A client that keeps sending after the server has refused it, as a
 * hostile one does: what it managed to send shows whether the server went
 * on reading.
 *
 * @module
 */

/**
 * Writes 64 KiB chunks to `conn` until `bytes` are sent or the server drops
 * the connection, then closes it; resolves with the bytes sent.
 */
export async function sendUntilDropped(conn: Deno.Conn, bytes: number): Promise<number> {
  const chunk = new Uint8Array(64 * 1024);
  let sent = 0;
  try {
    while (sent < bytes) sent += await conn.write(chunk);
  } catch {
    // The server dropped the connection.
  }
  return sent;
}

/** Closes `conn` unless it is closed already. */
export function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Closed already.
  }
}
