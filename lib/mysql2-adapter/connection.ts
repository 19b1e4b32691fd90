/**
 * The connection the adapter lends: mysql2's pool connection API, promise and callback forms,
 * over a connection leased from the `FreshPool`, its commands kept in call order.
 */
import { EventEmitter } from 'node:events';
import type { Readable } from 'node:stream';
import type { Connection, ConnectionOptions, ExecuteValues, FieldPacket, QueryOptions, QueryResult, QueryValues } from 'mysql2/promise';
import { ConnectionReleasedError } from '../errors.js';
import type { LentConnection } from '../lent-connection.js';
import type { Lease, PoolConnection } from '../pool/index.js';
import { callbackOnly, runStatement, type StatementCallback } from './callbacks.js';
import { CommandQueue, type Command } from './command-queue.js';
import { Mysql2AdapterQuery, type StreamOptions } from './query.js';
import { streamInTurn, type StreamOver } from './row-stream.js';

// What mysql2 gives a command that can no longer be sent on a closed connection.
function closedStateError(): Error {
  return Object.assign(new Error("Can't add new command when connection is in closed state"), { fatal: true });
}

/**
 * The connection `Mysql2PoolAdapter.getConnection()` lends: mysql2's pool connection API in
 * both its promise and callback forms, forwarded to a connection leased from the `FreshPool`.
 * Give it back with `release()` (or `end()`, which releases, as mysql2's pool connections do).
 *
 * Commands run one at a time in the order they were called, whatever their form (promise,
 * callback, stream), as on a mysql2 connection. A command called before `release()` still
 * runs: the connection goes back to the pool once every command called on it has finished.
 * Commands called after `release()` reject (or call back) with `ConnectionReleasedError`;
 * promise-returning methods never throw.
 *
 * Events of the connection underneath are not forwarded: the pool itself handles a
 * connection's errors and closes.
 */
export class Mysql2AdapterConnection extends EventEmitter {
  #lease: Lease;
  /** The command order; `release()`, `end()` and `destroy()` close it to new commands. */
  #commands = new CommandQueue(() => this.#giveBack());
  /** The lease itself was given back, once the queue drained. */
  #returned = false;
  #onReturned: Array<() => void> = [];

  /** @internal Built by `Mysql2PoolAdapter.getConnection`. */
  constructor(lease: Lease) {
    super();
    this.#lease = lease;
  }

  get #conn(): PoolConnection {
    return this.#lease.conn;
  }

  /**
   * Gives the connection back to the pool once the commands already called on it have
   * finished; later calls do nothing.
   */
  release(): void {
    this.#commands.close();
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
    if (typeof values === 'function') return runStatement(this.#call((conn) => conn.query<T>(sql as string)), values);
    if (typeof callback === 'function') return runStatement(this.#call((conn) => conn.query<T>(sql as string, values)), callback);
    const command = this.#commands.reserve();
    return new Mysql2AdapterQuery(
      () => this.#commands.run(command, () => this.#conn.query<T>(sql as string, values)),
      (options, onOver) => this.#stream(command, sql, values, options, onOver),
      (decide) => {
        if (command !== undefined) command.decide = decide;
      },
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
    if (typeof values === 'function') return runStatement(this.#call((conn) => conn.execute<T>(sql as string)), values);
    if (typeof callback === 'function') return runStatement(this.#call((conn) => conn.execute<T>(sql as string, values)), callback);
    return this.#call((conn) => conn.execute<T>(sql as string, values));
  }

  /** START TRANSACTION. Promise, or `callback(err)`. */
  beginTransaction(): Promise<void>;
  beginTransaction(callback: (err: Error | null) => unknown): void;
  beginTransaction(callback?: (err: Error | null) => unknown): Promise<void> | void {
    return callbackOnly(callback, this.#call((conn) => conn.beginTransaction()));
  }

  /** COMMIT. Promise, or `callback(err)`. */
  commit(): Promise<void>;
  commit(callback: (err: Error | null) => unknown): void;
  commit(callback?: (err: Error | null) => unknown): Promise<void> | void {
    return callbackOnly(callback, this.#call((conn) => conn.commit()));
  }

  /** ROLLBACK. Promise, or `callback(err)`. */
  rollback(): Promise<void>;
  rollback(callback: (err: Error | null) => unknown): void;
  rollback(callback?: (err: Error | null) => unknown): Promise<void> | void {
    return callbackOnly(callback, this.#call((conn) => conn.rollback()));
  }

  /** Pings the server on this connection. Promise, or `callback(err)`. */
  ping(): Promise<void>;
  ping(callback: (err: Error | null) => unknown): void;
  ping(callback?: (err: Error | null) => unknown): Promise<void> | void {
    return callbackOnly(callback, this.#call((conn) => conn.ping()));
  }

  /**
   * The connection is connected already: resolves (or calls back) at once; rejects with
   * `ConnectionReleasedError` once given back.
   */
  connect(): Promise<void>;
  connect(callback: (err: Error | null) => unknown): void;
  connect(callback?: (err: Error | null) => unknown): Promise<void> | void {
    return callbackOnly(callback, this.#commands.closed ? Promise.reject(new ConnectionReleasedError()) : Promise.resolve());
  }

  /**
   * Gives the connection back, as mysql2's pool connections do by default (Drizzle's
   * `.iterator()` relies on it). Resolves (or calls back) once it is back in the pool, after
   * the commands already called on it; a second call does nothing more.
   */
  end(): Promise<void>;
  end(callback: (err: Error | null) => unknown): void;
  end(callback?: (err: Error | null) => unknown): Promise<void> | void {
    this.release();
    const returned = this.#returned ? Promise.resolve() : new Promise<void>((resolve) => this.#onReturned.push(resolve));
    return callbackOnly(callback, returned);
  }

  /**
   * Closes the connection underneath and gives it back; the pool replaces it. As with mysql2,
   * a command already sent finishes, and the commands queued behind it fail with a fatal
   * error, unsent. Throws `ConnectionReleasedError` once the connection was given back.
   */
  destroy(): void {
    if (this.#commands.closed) throw new ConnectionReleasedError();
    this.#commands.destroy(closedStateError(), () => this.#conn.destroy());
  }

  /** Prepares a statement (mysql2's promise API); the connection is cleaned up on return. */
  prepare(options: string | QueryOptions): ReturnType<Connection['prepare']> {
    return this.#call((conn) => conn.prepare(options));
  }

  /** Drops a prepared statement from mysql2's cache, in its turn among the commands called before. */
  unprepare(sql: string | QueryOptions): void {
    const command = this.#commands.reserve();
    if (command === undefined) throw new ConnectionReleasedError();
    this.#commands.fill(
      command,
      (done) => {
        try {
          this.#conn.unprepare(sql);
        } finally {
          done();
        }
      },
      () => undefined,
    );
  }

  /** COM_CHANGE_USER; the pool closes the connection when it comes back. */
  changeUser(options: ConnectionOptions): Promise<void> {
    return this.#call((conn) => conn.changeUser(options));
  }

  /** COM_RESET_CONNECTION: ends any transaction and clears the session. */
  reset(): Promise<void> {
    return this.#call((conn) => conn.reset());
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
   * This object: mysql2's callback pool connections give their promise wrapper here, and
   * TypeORM sends every statement through it (`connection.promise().query(...)`); this
   * connection offers both APIs itself.
   */
  promise(): this {
    return this;
  }

  /**
   * This object: mysql2's pool connections expose their callback connection here, and
   * Drizzle's `.iterator()` streams through it; this connection offers both APIs itself.
   */
  get connection(): this {
    return this;
  }

  /** Gives the connection back (once the commands already called on it have finished). */
  async [Symbol.asyncDispose](): Promise<void> {
    this.release();
  }

  #giveBack(): void {
    if (this.#returned) return;
    this.#returned = true;
    try {
      this.#lease.release();
    } finally {
      for (const resolve of this.#onReturned.splice(0)) resolve();
    }
  }

  // A command with a promise outcome, in the next place of the command order.
  #call<T>(send: (conn: PoolConnection) => Promise<T>): Promise<T> {
    return this.#commands.run(this.#commands.reserve(), () => send(this.#conn));
  }

  // A streamed query, sent in its turn on mysql2's callback connection, checked first.
  #stream(command: Command | undefined, sql: string | QueryOptions, values: unknown, options: StreamOptions | undefined, onOver: StreamOver): Readable {
    const lent = this.#conn as unknown as LentConnection;
    return streamInTurn(this.#commands, command, () => lent.untrackedConnection(), sql, values, options, onOver);
  }
}
