/**
 * Why Shark's own transport ended a connection itself, by name: what the
 * CLI counts in `shark_connections_closed_total{reason}`. The close code a
 * connection sent is the client's business, never a signal between modules.
 *
 * @module
 */
import { CloseCode } from "./frame.ts";

/**
 * A protocol error (1002 sent), invalid UTF-8 (1007), a message over
 * `max_message_bytes` (1009), a keep-alive ping not answered in time (1011).
 */
export type TransportFailure =
  | "protocol_error"
  | "invalid_utf8"
  | "message_too_big"
  | "ping_timeout";

const READER_FAILURES: Readonly<Record<number, TransportFailure>> = {
  [CloseCode.protocolError]: "protocol_error",
  [CloseCode.invalidData]: "invalid_utf8",
  [CloseCode.tooBig]: "message_too_big",
};

/** The failure a frame reader's close code (1002, 1007, 1009) stands for. */
export function readerFailure(code: number): TransportFailure {
  return READER_FAILURES[code] ?? "protocol_error";
}
