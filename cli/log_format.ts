/**
 * How Shark's log lines look, in both `log.format`s: a message reads as a
 * sentence (`listening on ws://127.0.0.1:9000`), its interpolated values
 * bare, while each value stays a structured property of the record for
 * machines. LogTape quotes interpolated strings by default
 * (`listening on "ws"://"127.0.0.1":9000`).
 *
 * @module
 */
import {
  getTextFormatter,
  jsonLinesFormatter,
  type LogRecord,
  type TextFormatter,
} from "@logtape/logtape";

/** A value as it reads inside a sentence: strings as they are, the rest as JSON. */
function bare(value: unknown): string {
  if (typeof value === "string") return value;
  if (value instanceof Error) return value.message;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** One JSON object per line; `message` is the sentence, `properties` the values. */
const jsonSentences: TextFormatter = (record: LogRecord) =>
  jsonLinesFormatter({
    ...record,
    message: [record.message.map((part, i) => i % 2 === 0 ? part : bare(part)).join("")],
  });

/**
 * The formatter of a `log.format`. The text format's `bare` preset renders
 * strings unquoted and escapes control characters, so that a value from a
 * client or a service cannot start a line of its own.
 */
export function logFormatter(format: "json" | "text"): TextFormatter {
  return format === "json"
    ? jsonSentences
    : getTextFormatter({ timestamp: "date-time-timezone", value: "bare" });
}
