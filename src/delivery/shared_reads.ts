/**
 * History reads shared by the subscriptions that ask for the same one (SPEC
 * section 10): after a node restarts, the clients of a topic come back
 * together and recover from the same position, and one read of the history
 * (and one parse of its envelopes) can serve them all.
 *
 * Why sharing keeps the no-gap rule: a subscription may use a read only if
 * the read was sent after the subscription joined its topic. Every envelope
 * published before the read is in it; every later one reaches the
 * subscription through the topic. So a read is never joined once sent:
 * requests that come while one is in flight wait for the next, which is sent
 * as soon as the one in flight settles, for all of them. At most one read
 * per key is in flight, and the busier the process (the longer a read
 * takes), the more requests share each one.
 *
 * @module
 */

/** The requests waiting for the next read of one key. */
interface Batch<T> {
  readonly read: () => Promise<T>;
  readonly result: PromiseWithResolvers<T>;
}

/** The reads of one key: whether one is in flight, and who waits for the next. */
interface Line<T> {
  inFlight: boolean;
  next: Batch<T> | undefined;
}

/**
 * Reads shared per key.
 *
 * @example
 * ```ts
 * const reads = new SharedReads<Recovery>();
 * const recovery = await reads.read(`${topic} ${epoch} ${offset}`, () => history.recover(topic, from, options));
 * ```
 */
export class SharedReads<T> {
  readonly #lines = new Map<string, Line<T>>();

  /** Keys with a read in flight or requests waiting. */
  get size(): number {
    return this.#lines.size;
  }

  /**
   * The result of a read of `key` sent from now on: `read` runs at once when
   * none is in flight, else after it, for every request that came meanwhile
   * (the first one's `read` is used).
   */
  read(key: string, read: () => Promise<T>): Promise<T> {
    let line = this.#lines.get(key);
    if (!line) this.#lines.set(key, line = { inFlight: false, next: undefined });
    line.next ??= { read, result: Promise.withResolvers<T>() };
    const promise = line.next.result.promise;
    if (!line.inFlight) this.#send(key, line);
    return promise;
  }

  #send(key: string, line: Line<T>): void {
    const batch = line.next;
    if (!batch) {
      this.#lines.delete(key);
      return;
    }
    line.next = undefined;
    line.inFlight = true;
    let sent: Promise<T>;
    try {
      sent = batch.read();
    } catch (error) {
      sent = Promise.reject(error);
    }
    sent.then(batch.result.resolve, batch.result.reject).finally(() => {
      line.inFlight = false;
      this.#send(key, line);
    });
  }
}
