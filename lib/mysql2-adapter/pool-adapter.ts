/**
 * The pool the adapter gives Drizzle and Kysely: mysql2's pool API over a `FreshPool`, which
 * lends, checks and takes back the connections; single-connection methods are refused here.
 */
import { EventEmitter } from 'node:events';
import mysql from 'mysql2/promise';
import type { Connection, ConnectionOptions, ExecuteValues, FieldPacket, QueryOptions, QueryResult, QueryValues } from 'mysql2/promise';
import { UnsupportedOperationError } from '../errors.js';
import type { FreshPool, Lease, PoolConnection } from '../pool/index.js';
import { callbackOnly, runStatement, settle, type StatementCallback } from './callbacks.js';
import { Mysql2AdapterConnection } from './connection.js';

/**
 * mysql2's pool API, promise and callback forms, backed by a `FreshPool`: hand it to Drizzle
 * or Kysely where they take a mysql2 pool. It is typed as mysql2's promise `Connection` plus
 * `getConnection`, which is what Drizzle's types accept; Kysely's `MysqlPool` is a subset.
 *
 * Methods of a single connection (transactions, prepared statements, session changes) throw
 * `UnsupportedOperationError` here: borrow a connection with `getConnection()` for them.
 * `escape`, `escapeId` and `format` use mysql2's defaults, not a connection's options.
 *
 * mysql2's `'connection'` event is never emitted (the pool opens and replaces connections
 * itself), so subscribing to it throws `UnsupportedOperationError` rather than leave setup code
 * that never runs: give it to `createPool` as `onConnect` or `initSql` instead.
 */
export class Mysql2PoolAdapter<P extends AdapterTarget = FreshPool> extends EventEmitter {
  #pool: P;
  #ended = false;

  /** Prefer `createMysql2Adapter(pool)`. */
  constructor(pool: P) {
    super();
    this.#pool = pool;
  }

  /** As `EventEmitter.on`; throws `UnsupportedOperationError` for `'connection'`. */
  override on(eventName: string | symbol, listener: Listener): this {
    refuseConnectionEvent('on', eventName);
    return super.on(eventName, listener);
  }

  /** As `EventEmitter.addListener`; throws `UnsupportedOperationError` for `'connection'`. */
  override addListener(eventName: string | symbol, listener: Listener): this {
    refuseConnectionEvent('addListener', eventName);
    return super.addListener(eventName, listener);
  }

  /** As `EventEmitter.once`; throws `UnsupportedOperationError` for `'connection'`. */
  override once(eventName: string | symbol, listener: Listener): this {
    refuseConnectionEvent('once', eventName);
    return super.once(eventName, listener);
  }

  /** As `EventEmitter.prependListener`; throws `UnsupportedOperationError` for `'connection'`. */
  override prependListener(eventName: string | symbol, listener: Listener): this {
    refuseConnectionEvent('prependListener', eventName);
    return super.prependListener(eventName, listener);
  }

  /** As `EventEmitter.prependOnceListener`; throws `UnsupportedOperationError` for `'connection'`. */
  override prependOnceListener(eventName: string | symbol, listener: Listener): this {
    refuseConnectionEvent('prependOnceListener', eventName);
    return super.prependOnceListener(eventName, listener);
  }

  /** The `FreshPool` (or cluster) underneath. */
  get freshPool(): P {
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

const EMPTY_OPTIONS: ConnectionOptions = Object.freeze({}) as ConnectionOptions;

// EventEmitter's own listener type, so typed listeners (`(conn) => ...`) are accepted as before.
type Listener = Parameters<EventEmitter['on']>[1];

const ON_A_CONNECTION = 'it needs one connection; borrow one with getConnection() and call it there';

// Setup code subscribed to mysql2's 'connection' event would silently never run.
function refuseConnectionEvent(method: string, eventName: string | symbol): void {
  if (eventName !== 'connection') return;
  throw new UnsupportedOperationError(
    method,
    "the 'connection' event is never emitted (the pool opens and replaces connections itself); " +
      "run per-connection setup with createPool's onConnect or initSql options instead",
  );
}

/**
 * Wraps a `FreshPool` in mysql2's pool API for Drizzle (`drizzle(adapter)` or
 * `drizzle({ client: adapter })`) and Kysely (`new MysqlDialect({ pool: adapter })`). The
 * adapter holds no connections of its own; the pool lends, checks and takes them back.
 */
export function createMysql2Adapter<P extends AdapterTarget = FreshPool>(pool: P): Mysql2PoolAdapter<P> {
  return new Mysql2PoolAdapter(pool);
}

/**
 * What the adapter needs of what it wraps: a `FreshPool`; a `FreshCluster`, whose statements
 * go to the writer; or `cluster.readers()`, whose statements go to the replicas.
 */
export interface AdapterTarget {
  lease(): Promise<Lease>;
  query<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values?: unknown): Promise<[T, FieldPacket[]]>;
  execute<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values?: unknown): Promise<[T, FieldPacket[]]>;
  withConnection<T>(fn: (conn: PoolConnection) => T | Promise<T>): Promise<T>;
  ready(): Promise<void>;
  end(): Promise<void>;
}
