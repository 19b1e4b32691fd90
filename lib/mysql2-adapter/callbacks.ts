/**
 * Bridges from the adapter's promises to mysql2's callback forms: a user's callback is called
 * as mysql2 would call it, and a promise-returning method rejects rather than throws.
 */
import type { FieldPacket, QueryError, QueryResult } from 'mysql2/promise';

/** mysql2's callback for `query` and `execute`: error, then rows (or OK packet) and fields. */
export type StatementCallback<T extends QueryResult = QueryResult> = (err: QueryError | null, result: T, fields: FieldPacket[]) => unknown;

/**
 * Calls a user's callback with the outcome of `promise`, outside the promise chain: a throw in
 * it surfaces as mysql2's would (an uncaught exception), never as an unhandled rejection with
 * a misleading origin.
 */
export function settle<T>(promise: Promise<T>, onDone: (err: Error | null, value?: T) => void): void {
  const call = (err: Error | null, value?: T) => {
    try {
      onDone(err, value);
    } catch (thrown) {
      process.nextTick(() => {
        throw thrown;
      });
    }
  };
  promise.then(
    (value) => call(null, value),
    (err: unknown) => call(err as Error),
  );
}

/** Hands a statement's `[rows, fields]` (or its error) to mysql2's `callback(err, rows, fields)`. */
export function runStatement<T extends QueryResult>(
  promise: Promise<[T, FieldPacket[]]>,
  callback: StatementCallback<T>,
): void {
  settle(promise, (err, value) => {
    if (err) callback(err as QueryError, undefined as unknown as T, undefined as unknown as FieldPacket[]);
    else callback(null, value![0], value![1]);
  });
}

/** A promise, or with a callback: `callback(err)` once it settles, and undefined. */
export function callbackOnly(callback: ((err: Error | null) => unknown) | undefined, promise: Promise<void>): Promise<void> | undefined {
  if (typeof callback !== 'function') return promise;
  settle(promise, (err) => callback(err));
  return undefined;
}

/** Calls `send`, turning a throw into a rejection: a promise-returning method must reject, never throw, whatever the layer underneath does. */
export function attempt<T>(send: () => Promise<T>): Promise<T> {
  try {
    return send();
  } catch (err) {
    return Promise.reject(err);
  }
}
