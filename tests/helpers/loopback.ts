/**
 * Loopback plumbing for the tests and the benchmarks: a free port for a
 * server that must be told its port before it starts, and whether a server
 * answers yet.
 *
 * @module
 */

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
export function freePort(): number {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return listener.addr.port;
}

/**
 * Whether a GET of `url` answers with a 2xx status within `timeoutMs`
 * (`false` while nothing listens there, or nothing answers).
 */
export async function answersOk(url: string, timeoutMs = 5000): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await response.body?.cancel();
    return response.ok;
  } catch {
    return false;
  }
}
