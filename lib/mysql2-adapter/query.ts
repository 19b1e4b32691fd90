/**
 * The query object of an adapter connection: a promise of `[rows, fields]` that can instead be
 * read as a stream of rows, as mysql2's two APIs give them. It holds no connection; the
 * connection hands it the two ways to send the query.
 */
import { EventEmitter } from 'node:events';
import type { Readable } from 'node:stream';
import { UnsupportedOperationError } from '../errors.js';
import type { StreamOver } from './row-stream.js';

/** Options of `stream()`, as mysql2's `Query.stream(options)`; rows are always objects (`objectMode`). */
export interface StreamOptions {
  /** Rows buffered before the query is paused. Default 16. */
  highWaterMark?: number;
  /** Accepted for mysql2 compatibility; always true. */
  objectMode?: boolean;
}

/**
 * What `query()` returns on an adapter connection without a callback: a promise of
 * `[rows, fields]`, as mysql2's promise API gives, that can instead be read as a stream of
 * rows, as mysql2's callback API's `Query.stream()` gives. Its place in the connection's
 * command order is taken when `query()` is called; it is sent in its turn, as a stream if
 * `stream()` was called in the same tick, otherwise as a promise query.
 *
 * Read with `stream()`, it also emits the events of mysql2's callback-API `Query`, for code
 * that subscribes before streaming (TypeORM's `queryRunner.stream()` releases its connection
 * on them): `'fields'` (fields), `'result'` (row, index) while rows arrive, `'error'` (err)
 * when the query fails (only while someone listens, so an unheard one never throws; the
 * stream errors as well), then `'end'` once the query is over on the connection, every row
 * received (read or not) or failed. Awaited as a promise it emits none: its rows and its
 * error are the promise's.
 */
export class Mysql2AdapterQuery<T> extends EventEmitter implements Promise<T> {
  #run: () => Promise<T>;
  #openStream: (options: StreamOptions | undefined, onOver: StreamOver) => Readable;
  #promise: Promise<T> | undefined;
  #streamed = false;

  /**
   * @internal Built by `Mysql2AdapterConnection.query`, which is handed the function that
   * settles the query's form as a promise query before the end of the tick, when it must.
   */
  constructor(
    run: () => Promise<T>,
    openStream: (options: StreamOptions | undefined, onOver: StreamOver) => Readable,
    onDecide?: (decide: () => void) => void,
  ) {
    super();
    this.#run = run;
    this.#openStream = openStream;
    // A query never awaited still runs, as with mysql2's promise API; the commands called
    // after it wait in the connection's queue until its form is known.
    const decide = () => {
      if (!this.#streamed) this.#started();
    };
    queueMicrotask(decide);
    onDecide?.(decide);
  }

  readonly [Symbol.toStringTag] = 'Mysql2AdapterQuery';

  then<R1 = T, R2 = never>(
    onfulfilled?: ((value: T) => R1 | PromiseLike<R1>) | null,
    onrejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    return this.#started().then(onfulfilled, onrejected);
  }

  catch<R = never>(onrejected?: ((reason: unknown) => R | PromiseLike<R>) | null): Promise<T | R> {
    return this.#started().catch(onrejected);
  }

  finally(onfinally?: (() => void) | null): Promise<T> {
    return this.#started().finally(onfinally);
  }

  /**
   * Reads the rows as an object-mode `Readable` instead (the connection is checked first).
   * Call it synchronously, right after `query()`. Throws `UnsupportedOperationError` when the
   * query was already sent as a promise, or streamed once.
   */
  stream(options?: StreamOptions): Readable {
    if (this.#streamed || this.#promise !== undefined) {
      throw new UnsupportedOperationError('stream', 'call it synchronously after query(), once, and without awaiting the query');
    }
    this.#streamed = true;
    const rows = this.#openStream(options, (err) => {
      if (err !== undefined && this.listenerCount('error') !== 0) this.emit('error', err);
      this.emit('end');
    });
    rows.on('fields', (fields: unknown) => this.emit('fields', fields));
    rows.on('result', (row: unknown, index: number) => this.emit('result', row, index));
    return rows;
  }

  #started(): Promise<T> {
    if (this.#streamed) return Promise.reject(new UnsupportedOperationError('then', 'this query was read with stream()'));
    this.#promise ??= this.#run();
    return this.#promise;
  }
}
