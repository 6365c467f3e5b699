/**
 * The event listeners of a connection of Shark's own transport, and the
 * data of its message events, as
 * `EventTarget` keeps them (a listener added twice is called once; one
 * that throws is reported and the others still run), without an
 * `EventTarget` per connection.
 *
 * @module
 */

type Listener = EventListenerOrEventListenerObject;

/** Listeners by event type. */
export class Listeners {
  #byType: Map<string, Listener[]> | undefined;

  /** Adds `listener` for `type`, once. */
  add(type: string, listener: Listener): void {
    const byType = this.#byType ??= new Map();
    const list = byType.get(type);
    if (!list) byType.set(type, [listener]);
    else if (!list.includes(listener)) list.push(listener);
  }

  /** Removes `listener` for `type`. */
  remove(type: string, listener: Listener): void {
    const list = this.#byType?.get(type);
    const index = list?.indexOf(listener) ?? -1;
    if (index >= 0) list!.splice(index, 1);
  }

  /** Calls every listener of `event.type` with `target` as `this`. */
  dispatch(target: unknown, event: Event): void {
    const list = this.#byType?.get(event.type);
    if (!list) return;
    for (const listener of list) {
      try {
        if (typeof listener === "function") listener.call(target, event);
        else listener.handleEvent(event);
      } catch (error) {
        reportError(error);
      }
    }
  }
}

/**
 * A message's data as `WebSocket` hands it to listeners: text as a string,
 * binary as a `Blob` or (with `binaryType` "arraybuffer") an `ArrayBuffer`
 * of its own: a payload can be a view into the socket's larger read buffer
 * (a `Buffer`, whose `slice` does not copy: hence the constructor).
 */
export function messageData(
  data: string | Uint8Array,
  binaryType: BinaryType,
): string | Blob | ArrayBuffer {
  if (typeof data === "string") return data;
  if (binaryType !== "arraybuffer") return new Blob([data as Uint8Array<ArrayBuffer>]);
  const whole = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
  return (whole ? data : new Uint8Array(data)).buffer as ArrayBuffer;
}
