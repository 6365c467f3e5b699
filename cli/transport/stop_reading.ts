/**
 * Stops reading a socket whose connection was failed (RFC 6455 section
 * 7.1.7): what the client still sends stays in the kernel's buffers, whose
 * window then stops the client, and is dropped with the connection. The
 * bytes never reach the process, so a hostile client costs neither memory
 * nor CPU for what it sends after a refused frame.
 *
 * A plain `node:net` socket stops reading on `pause()`. A `node:tls` socket
 * of this runtime does not: `pause()` stops its `data` events, but its TLS
 * layer goes on reading and decrypting into the stream's buffer (measured:
 * 49 of 50 MB held in memory). There, reading stops on the TCP socket under
 * the TLS layer (`_parent._handle.readStop()`, the runtime's `node:net`
 * internals, feature-detected). Where that is missing, the socket is left
 * flowing: its bytes are read and dropped (CPU, no memory) until the
 * connection is dropped.
 *
 * @module
 */

/** What is used of a socket: a `node:net` `Socket` or a `node:tls` `TLSSocket`. */
export interface Readable {
  pause(): unknown;
  /** Set on a `node:tls` socket. */
  readonly encrypted?: boolean;
}

/** The TCP handle under a `node:tls` socket of this runtime. */
interface TlsInternals {
  readonly _parent?: { readonly _handle?: { readStop?: () => unknown } | null } | null;
}

/**
 * Stops reading `socket`. Returns false where it cannot be stopped (a TLS
 * socket without the internals this module knows): it is then left
 * flowing, and what arrives must be dropped by the caller.
 */
export function stopReading(socket: Readable): boolean {
  if (socket.encrypted !== true) {
    socket.pause();
    return true;
  }
  const handle = (socket as TlsInternals)._parent?._handle;
  if (typeof handle?.readStop !== "function") return false;
  socket.pause();
  handle.readStop();
  return true;
}
