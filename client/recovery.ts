/**
 * History recovery on the client's side (docs/protocol.md, "Extension:
 * history and recovery"): a subscription remembers the last position its
 * frames carried and asks to recover from it when it subscribes again.
 *
 * @module
 */
import type { JsonObject, Position } from "./types.ts";

/** The position after `frame`: the highest seen in an epoch; another epoch replaces it. */
export function advance(position: Position | undefined, frame: JsonObject): Position | undefined {
  const { offset, epoch } = frame;
  if (typeof offset !== "number" || typeof epoch !== "string") return position;
  if (position?.epoch === epoch && position.offset >= offset) return position;
  return { offset, epoch };
}

/** The `recover` field of a subscribe: the position, when there is one and recovery is wanted. */
export function recoverField(position: Position | undefined, wanted: boolean): JsonObject {
  return wanted && position ? { recover: { offset: position.offset, epoch: position.epoch } } : {};
}
