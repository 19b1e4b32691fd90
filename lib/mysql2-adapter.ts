/**
 * A mysql2-pool look-alike backed by a `FreshPool`, for libraries that take a mysql2 pool:
 * Drizzle (`drizzle(adapter)`) and Kysely (`new MysqlDialect({ pool: adapter })`).
 *
 * What they call, from their published sources:
 * - Drizzle (`drizzle-orm/mysql2`): `query(options, values)` and `execute(sql, values)`,
 *   promise form, on the pool and on a connection; `'getConnection' in client` to tell a pool
 *   from a connection; `getConnection()` (promise) and `release()` for a transaction, which it
 *   drives with plain `begin` / `commit` / `rollback` statements; for `.iterator()`,
 *   `connection.query(options, values).stream()` then `connection.end()` to give it back. It
 *   calls `client.promise()` when that exists: this adapter has none, it is promise-native.
 * - Kysely (`MysqlDialect`): `pool.getConnection(callback)`, `connection.query(sql, values,
 *   callback)`, `connection.query(sql, values).stream({ objectMode: true })` for
 *   `.stream()`, `connection.release()`, and `pool.end(callback)` from `db.destroy()`.
 *
 * Each statement goes through the lent connection's tracked methods, so the checks of
 * `withConnection` apply: the borrow checks the connection, and within a transaction each
 * statement checks it again after an idle spell. A streamed query cannot be tracked (it needs
 * mysql2's callback connection); the same check runs before it starts, and the connection is
 * cleaned up (ROLLBACK) when it comes back.
 */
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import mysql from 'mysql2/promise';
import type { Connection, ConnectionOptions, ExecuteValues, FieldPacket, QueryError, QueryOptions, QueryResult, QueryValues } from 'mysql2/promise';
import { UnsupportedOperationError } from './errors.js';
import type { LentConnection } from './lent-connection.js';
import type { FreshPool, Lease, PoolConnection } from './pool.js';

/** mysql2's callback for `query` and `execute`: error, then rows (or OK packet) and fields. */
export type StatementCallback<T extends QueryResult = QueryResult> = (err: QueryError | null, result: T, fields: FieldPacket[]) => unknown;

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
 * rows, as mysql2's callback API's `Query.stream()` gives. The query is sent in the next
 * microtask unless `stream()` is called first, synchronously.
 */
export class Mysql2AdapterQuery<T> implements Promise<T> {
  #run: () => Promise<T>;
  #openStream: (options: StreamOptions | undefined) => Readable;
  #promise: Promise<T> | undefined;
  #streamed = false;

  /** @internal Built by `Mysql2AdapterConnection.query`. */
  constructor(run: () => Promise<T>, openStream: (options: StreamOptions | undefined) => Readable) {
    this.#run = run;
    this.#openStream = openStream;
    // A query never awaited still runs, as with mysql2's promise API.
    queueMicrotask(() => {
      if (!this.#streamed) this.#started();
    });
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
    return this.#openStream(options);
  }

  #started(): Promise<T> {
    if (this.#streamed) return Promise.reject(new UnsupportedOperationError('then', 'this query was read with stream()'));
    this.#promise ??= this.#run();
    return this.#promise;
  }
}

// The part of mysql2's callback connection a streamed query needs.
interface CoreConnection {
  query(sql: string | QueryOptions, values: unknown): { stream(options?: StreamOptions): Readable };
}

// Calls a user's callback outside the promise chain: a throw in it surfaces as mysql2's would
// (an uncaught exception), never as an unhandled rejection with a misleading origin.
function settle<T>(promise: Promise<T>, onDone: (err: Error | null, value?: T) => void): void {
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

function runStatement<T extends QueryResult>(
  promise: Promise<[T, FieldPacket[]]>,
  callback: StatementCallback<T>,
): void {
  settle(promise, (err, value) => {
    if (err) callback(err as QueryError, undefined as unknown as T, undefined as unknown as FieldPacket[]);
    else callback(null, value![0], value![1]);
  });
}

function callbackOnly(callback: ((err: Error | null) => unknown) | undefined, promise: Promise<void>): Promise<void> | undefined {
  if (typeof callback !== 'function') return promise;
  settle(promise, (err) => callback(err));
  return undefined;
}

/**
 * The connection `Mysql2PoolAdapter.getConnection()` lends: mysql2's pool connection API in
 * both its promise and callback forms, forwarded to a connection leased from the `FreshPool`.
 * Give it back with `release()` (or `end()`, which releases, as mysql2's pool connections do).
 * Once given back, every statement rejects with `ConnectionReleasedError`.
 *
 * Events of the connection underneath are not forwarded: the pool itself handles a
 * connection's errors and closes.
 */
export class Mysql2AdapterConnection extends EventEmitter {
  #lease: Lease;

  /** @internal Built by `Mysql2PoolAdapter.getConnection`. */
  constructor(lease: Lease) {
    super();
    this.#lease = lease;
  }

  get #conn(): PoolConnection {
    return this.#lease.conn;
  }

  /** Gives the connection back to the pool; later calls do nothing. */
  release(): void {
    this.#lease.release();
  }

  /**
   * Runs a statement with mysql2's `query` (text protocol, client-side escaping). Without a
   * callback: a promise of `[rows, fields]` that can be read with `.stream()` instead. With a
   * callback: `callback(err, rows, fields)`.
   */
  query<T extends QueryResult = QueryResult>(sql: string, values?: QueryValues): Mysql2AdapterQuery<[T, FieldPacket[]]>;
  query<T extends QueryResult = QueryResult>(options: QueryOptions, values?: QueryValues): Mysql2AdapterQuery<[T, FieldPacket[]]>;
  query<T extends QueryResult = QueryResult>(sql: string | QueryOptions, callback: StatementCallback<T>): void;
  query<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values: QueryValues, callback: StatementCallback<T>): void;
  query<T extends QueryResult = QueryResult>(
    sql: string | QueryOptions,
    values?: QueryValues | StatementCallback<T>,
    callback?: StatementCallback<T>,
  ): Mysql2AdapterQuery<[T, FieldPacket[]]> | void {
    if (typeof values === 'function') return runStatement(this.#conn.query<T>(sql as string), values);
    if (typeof callback === 'function') return runStatement(this.#conn.query<T>(sql as string, values), callback);
    return new Mysql2AdapterQuery(
      () => this.#conn.query<T>(sql as string, values),
      (options) => this.#stream(sql, values, options),
    );
  }

  /**
   * Runs a prepared statement with mysql2's `execute`. Without a callback: a promise of
   * `[rows, fields]`. With a callback: `callback(err, rows, fields)`.
   */
  execute<T extends QueryResult = QueryResult>(sql: string, values?: ExecuteValues): Promise<[T, FieldPacket[]]>;
  execute<T extends QueryResult = QueryResult>(options: QueryOptions, values?: ExecuteValues): Promise<[T, FieldPacket[]]>;
  execute<T extends QueryResult = QueryResult>(sql: string | QueryOptions, callback: StatementCallback<T>): void;
  execute<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values: ExecuteValues, callback: StatementCallback<T>): void;
  execute<T extends QueryResult = QueryResult>(
    sql: string | QueryOptions,
    values?: ExecuteValues | StatementCallback<T>,
    callback?: StatementCallback<T>,
  ): Promise<[T, FieldPacket[]]> | void {
    if (typeof values === 'function') return runStatement(this.#conn.execute<T>(sql as string), values);
    if (typeof callback === 'function') return runStatement(this.#conn.execute<T>(sql as string, values), callback);
    return this.#conn.execute<T>(sql as string, values);
  }

  /** START TRANSACTION. Promise, or `callback(err)`. */
  beginTransaction(): Promise<void>;
  beginTransaction(callback: (err: Error | null) => unknown): void;
  beginTransaction(callback?: (err: Error | null) => unknown): Promise<void> | void {
    return callbackOnly(callback, this.#conn.beginTransaction());
  }

  /** COMMIT. Promise, or `callback(err)`. */
  commit(): Promise<void>;
  commit(callback: (err: Error | null) => unknown): void;
  commit(callback?: (err: Error | null) => unknown): Promise<void> | void {
    return callbackOnly(callback, this.#conn.commit());
  }

  /** ROLLBACK. Promise, or `callback(err)`. */
  rollback(): Promise<void>;
  rollback(callback: (err: Error | null) => unknown): void;
  rollback(callback?: (err: Error | null) => unknown): Promise<void> | void {
    return callbackOnly(callback, this.#conn.rollback());
  }

  /** Pings the server on this connection. Promise, or `callback(err)`. */
  ping(): Promise<void>;
  ping(callback: (err: Error | null) => unknown): void;
  ping(callback?: (err: Error | null) => unknown): Promise<void> | void {
    let promise: Promise<void>;
    try {
      promise = this.#conn.ping();
    } catch (err) {
      promise = Promise.reject(err as Error);
    }
    return callbackOnly(callback, promise);
  }

  /** The connection is connected already: resolves (or calls back) at once. */
  connect(): Promise<void>;
  connect(callback: (err: Error | null) => unknown): void;
  connect(callback?: (err: Error | null) => unknown): Promise<void> | void {
    return callbackOnly(callback, Promise.resolve());
  }

  /**
   * Gives the connection back, as mysql2's pool connections do by default (Drizzle's
   * `.iterator()` relies on it). Promise, or `callback(err)`.
   */
  end(): Promise<void>;
  end(callback: (err: Error | null) => unknown): void;
  end(callback?: (err: Error | null) => unknown): Promise<void> | void {
    this.release();
    return callbackOnly(callback, Promise.resolve());
  }

  /** Closes the connection underneath at once and gives it back; the pool replaces it. */
  destroy(): void {
    try {
      this.#conn.destroy();
    } finally {
      this.release();
    }
  }

  /** Prepares a statement (mysql2's promise API); the connection is cleaned up on return. */
  prepare(options: string | QueryOptions): ReturnType<Connection['prepare']> {
    return this.#conn.prepare(options);
  }

  /** Drops a prepared statement from mysql2's cache. */
  unprepare(sql: string | QueryOptions): void {
    this.#conn.unprepare(sql);
  }

  /** COM_CHANGE_USER; the connection is cleaned up on return. */
  changeUser(options: ConnectionOptions): Promise<void> {
    return this.#conn.changeUser(options);
  }

  /** COM_RESET_CONNECTION: ends any transaction and clears the session. */
  reset(): Promise<void> {
    return this.#conn.reset();
  }

  /** Pauses reading from the socket. */
  pause(): void {
    this.#conn.pause();
  }

  /** Resumes reading from the socket. */
  resume(): void {
    this.#conn.resume();
  }

  /** Escapes a value with this connection's options. */
  escape(value: unknown): string {
    return this.#conn.escape(value);
  }

  /** Escapes an identifier. */
  escapeId(value: string): string;
  escapeId(values: string[]): string;
  escapeId(value: string | string[]): string {
    return this.#conn.escapeId(value as string);
  }

  /** Fills `?` and `??` placeholders with escaped values. */
  format(sql: string, values?: unknown): string {
    return this.#conn.format(sql, values);
  }

  /** The server's id of the connection underneath (`CONNECTION_ID()`); it changes when the pool replaces a dead one. */
  get threadId(): number {
    return this.#conn.threadId;
  }

  /** The options of the connection underneath. */
  get config(): ConnectionOptions {
    return this.#conn.config;
  }

  /** mysql2's state of the connection underneath. */
  get state(): Connection['state'] {
    return this.#conn.state;
  }

  /**
   * This object: mysql2's pool connections expose their callback connection here, and
   * Drizzle's `.iterator()` streams through it; this connection offers both APIs itself.
   */
  get connection(): this {
    return this;
  }

  /** Gives the connection back. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.release();
  }

  // A streamed query: checked first as any statement is (a dead connection is replaced, or a
  // lost transaction rejects), then sent on mysql2's callback connection.
  #stream(sql: string | QueryOptions, values: unknown, options: StreamOptions | undefined): Readable {
    const conn = this.#conn;
    async function* rows(): AsyncGenerator<unknown> {
      const core = (await (conn as unknown as LentConnection).untrackedConnection()) as CoreConnection;
      const inner = core.query(sql, values).stream({ ...options, objectMode: true });
      for await (const row of inner) yield row;
    }
    return Readable.from(rows(), { objectMode: true, highWaterMark: options?.highWaterMark ?? 16 });
  }
}

/**
 * mysql2's pool API, promise and callback forms, backed by a `FreshPool`: hand it to Drizzle
 * or Kysely where they take a mysql2 pool. It is typed as mysql2's promise `Connection` plus
 * `getConnection`, which is what Drizzle's types accept; Kysely's `MysqlPool` is a subset.
 *
 * Methods of a single connection (transactions, prepared statements, session changes) throw
 * `UnsupportedOperationError` here: borrow a connection with `getConnection()` for them.
 * `escape`, `escapeId` and `format` use mysql2's defaults, not a connection's options.
 */
export class Mysql2PoolAdapter extends EventEmitter {
  #pool: FreshPool;
  #ended = false;

  /** Prefer `createMysql2Adapter(pool)`. */
  constructor(pool: FreshPool) {
    super();
    this.#pool = pool;
  }

  /** The `FreshPool` underneath. */
  get freshPool(): FreshPool {
    return this.#pool;
  }

  /**
   * Borrows a connection, checked as `FreshPool.lease()` checks it. Promise, or
   * `callback(err, connection)`. Rejects with the pool's errors (`AcquireTimeoutError`,
   * `PoolClosedError`, ...). Give it back with `connection.release()`.
   */
  getConnection(): Promise<Mysql2AdapterConnection>;
  getConnection(callback: (err: Error | null, connection: Mysql2AdapterConnection) => unknown): void;
  getConnection(callback?: (err: Error | null, connection: Mysql2AdapterConnection) => unknown): Promise<Mysql2AdapterConnection> | void {
    const promise = this.#pool.lease().then((lease) => new Mysql2AdapterConnection(lease));
    if (typeof callback !== 'function') return promise;
    settle(promise, (err, connection) => callback(err, connection as Mysql2AdapterConnection));
  }

  /** Gives a connection from `getConnection()` back (same as `connection.release()`). */
  releaseConnection(connection: Mysql2AdapterConnection): void {
    if (connection instanceof Mysql2AdapterConnection) connection.release();
  }

  /**
   * Runs one statement with mysql2's `query` on a borrowed connection. Promise of
   * `[rows, fields]`, or `callback(err, rows, fields)`.
   */
  query<T extends QueryResult = QueryResult>(sql: string, values?: QueryValues): Promise<[T, FieldPacket[]]>;
  query<T extends QueryResult = QueryResult>(options: QueryOptions, values?: QueryValues): Promise<[T, FieldPacket[]]>;
  query<T extends QueryResult = QueryResult>(sql: string | QueryOptions, callback: StatementCallback<T>): void;
  query<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values: QueryValues, callback: StatementCallback<T>): void;
  query<T extends QueryResult = QueryResult>(
    sql: string | QueryOptions,
    values?: QueryValues | StatementCallback<T>,
    callback?: StatementCallback<T>,
  ): Promise<[T, FieldPacket[]]> | void {
    if (typeof values === 'function') return runStatement(this.#pool.query<T>(sql), values);
    if (typeof callback === 'function') return runStatement(this.#pool.query<T>(sql, values), callback);
    return this.#pool.query<T>(sql, values);
  }

  /**
   * Runs one prepared statement with mysql2's `execute` on a borrowed connection. Promise of
   * `[rows, fields]`, or `callback(err, rows, fields)`.
   */
  execute<T extends QueryResult = QueryResult>(sql: string, values?: ExecuteValues): Promise<[T, FieldPacket[]]>;
  execute<T extends QueryResult = QueryResult>(options: QueryOptions, values?: ExecuteValues): Promise<[T, FieldPacket[]]>;
  execute<T extends QueryResult = QueryResult>(sql: string | QueryOptions, callback: StatementCallback<T>): void;
  execute<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values: ExecuteValues, callback: StatementCallback<T>): void;
  execute<T extends QueryResult = QueryResult>(
    sql: string | QueryOptions,
    values?: ExecuteValues | StatementCallback<T>,
    callback?: StatementCallback<T>,
  ): Promise<[T, FieldPacket[]]> | void {
    if (typeof values === 'function') return runStatement(this.#pool.execute<T>(sql), values);
    if (typeof callback === 'function') return runStatement(this.#pool.execute<T>(sql, values), callback);
    return this.#pool.execute<T>(sql, values);
  }

  /**
   * Ends the `FreshPool` (`pool.end()`): Kysely's `db.destroy()` calls it. Skip it when the
   * pool is shared with other code and end the pool there. Promise, or `callback(err)`.
   */
  end(): Promise<void>;
  end(callback: (err: Error | null) => unknown): void;
  end(callback?: (err: Error | null) => unknown): Promise<void> | void {
    this.#ended = true;
    return callbackOnly(callback, this.#pool.end());
  }

  /** Ends the pool. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.end();
  }

  /** Opens the pool's first connections (`FreshPool.ready()`): rejects with `ConnectError` when the server cannot be reached. */
  connect(): Promise<void> {
    return this.#pool.ready();
  }

  /** Pings the server on a borrowed connection. */
  ping(): Promise<void> {
    return this.#pool.withConnection((conn) => conn.ping());
  }

  /** Escapes a value (mysql2's defaults). */
  escape(value: unknown): string {
    return mysql.escape(value as never);
  }

  /** Escapes an identifier. */
  escapeId(value: string): string;
  escapeId(values: string[]): string;
  escapeId(value: string | string[]): string {
    return mysql.escapeId(value);
  }

  /** Fills `?` and `??` placeholders with escaped values (mysql2's defaults). */
  format(sql: string, values?: unknown): string {
    return mysql.format(sql, values as never);
  }

  /** A pool has no single server thread: always -1. */
  get threadId(): number {
    return -1;
  }

  /** The pool does not expose its connection options here: an empty object. */
  get config(): ConnectionOptions {
    return EMPTY_OPTIONS;
  }

  /** `'disconnected'` after `end()` through this adapter, otherwise `'authenticated'`. */
  get state(): Connection['state'] {
    return this.#ended ? 'disconnected' : 'authenticated';
  }

  /** Throws `UnsupportedOperationError`: a transaction needs one connection; use `getConnection()`. */
  beginTransaction(): Promise<void> {
    return Promise.reject(new UnsupportedOperationError('beginTransaction', ON_A_CONNECTION));
  }

  /** Throws `UnsupportedOperationError`: use `getConnection()`. */
  commit(): Promise<void> {
    return Promise.reject(new UnsupportedOperationError('commit', ON_A_CONNECTION));
  }

  /** Throws `UnsupportedOperationError`: use `getConnection()`. */
  rollback(): Promise<void> {
    return Promise.reject(new UnsupportedOperationError('rollback', ON_A_CONNECTION));
  }

  /** Throws `UnsupportedOperationError`: use `getConnection()`. */
  prepare(_options: string | QueryOptions): ReturnType<Connection['prepare']> {
    return Promise.reject(new UnsupportedOperationError('prepare', ON_A_CONNECTION));
  }

  /** Throws `UnsupportedOperationError`: use `getConnection()`. */
  unprepare(_sql: string | QueryOptions): void {
    throw new UnsupportedOperationError('unprepare', ON_A_CONNECTION);
  }

  /** Throws `UnsupportedOperationError`: use `getConnection()`. */
  changeUser(_options: ConnectionOptions): Promise<void> {
    return Promise.reject(new UnsupportedOperationError('changeUser', ON_A_CONNECTION));
  }

  /** Throws `UnsupportedOperationError`: use `getConnection()`. */
  reset(): Promise<void> {
    return Promise.reject(new UnsupportedOperationError('reset', ON_A_CONNECTION));
  }

  /** Throws `UnsupportedOperationError`: end the pool with `end()`. */
  destroy(): void {
    throw new UnsupportedOperationError('destroy', 'end the pool with end()');
  }

  /** Throws `UnsupportedOperationError`: use `getConnection()`. */
  pause(): void {
    throw new UnsupportedOperationError('pause', ON_A_CONNECTION);
  }

  /** Throws `UnsupportedOperationError`: use `getConnection()`. */
  resume(): void {
    throw new UnsupportedOperationError('resume', ON_A_CONNECTION);
  }
}

const ON_A_CONNECTION = 'it needs one connection; borrow one with getConnection() and call it there';
const EMPTY_OPTIONS: ConnectionOptions = Object.freeze({}) as ConnectionOptions;

/**
 * Wraps a `FreshPool` in mysql2's pool API for Drizzle (`drizzle(adapter)` or
 * `drizzle({ client: adapter })`) and Kysely (`new MysqlDialect({ pool: adapter })`). The
 * adapter holds no connections of its own; the pool lends, checks and takes them back.
 */
export function createMysql2Adapter(pool: FreshPool): Mysql2PoolAdapter {
  return new Mysql2PoolAdapter(pool);
}
