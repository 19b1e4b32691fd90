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
 *
 * A connection runs its commands in the order they were called, whatever their form, as
 * mysql2's command queue does: code that fires a statement without awaiting it and then sends
 * another (or releases the connection) relies on that.
 */
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import mysql from 'mysql2/promise';
import type { Connection, ConnectionOptions, ExecuteValues, FieldPacket, QueryError, QueryOptions, QueryResult, QueryValues } from 'mysql2/promise';
import { ConnectionReleasedError, UnsupportedOperationError } from './errors.js';
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
 * rows, as mysql2's callback API's `Query.stream()` gives. Its place in the connection's
 * command order is taken when `query()` is called; it is sent in its turn, as a stream if
 * `stream()` was called in the same tick, otherwise as a promise query.
 */
export class Mysql2AdapterQuery<T> implements Promise<T> {
  #run: () => Promise<T>;
  #openStream: (options: StreamOptions | undefined) => Readable;
  #promise: Promise<T> | undefined;
  #streamed = false;

  /**
   * @internal Built by `Mysql2AdapterConnection.query`, which is handed the function that
   * settles the query's form as a promise query before the end of the tick, when it must.
   */
  constructor(run: () => Promise<T>, openStream: (options: StreamOptions | undefined) => Readable, onDecide?: (decide: () => void) => void) {
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
    return this.#openStream(options);
  }

  #started(): Promise<T> {
    if (this.#streamed) return Promise.reject(new UnsupportedOperationError('then', 'this query was read with stream()'));
    this.#promise ??= this.#run();
    return this.#promise;
  }
}

// The parts of mysql2's callback connection and of its `Query` that a streamed query needs.
interface CoreQuery {
  on(event: 'fields', listener: (fields: FieldPacket[] | undefined) => void): this;
  on(event: 'result', listener: (row: unknown, index: number) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: 'end', listener: () => void): this;
}

interface CoreConnection {
  query(sql: string | QueryOptions, values: unknown): CoreQuery;
  pause(): void;
  resume(): void;
  on(event: 'error', listener: (err: Error) => void): this;
  off(event: 'error', listener: (err: Error) => void): this;
}

// One command in a connection's queue. `start` is set once its form is known (a query may
// still become a stream until the end of the tick it was called in); it must call `done`
// exactly once, when the connection is free for the next command.
interface Command {
  start: ((done: () => void) => void) | undefined;
  abort: ((err: Error) => void) | undefined;
  // Settles the form of a query at once, as a promise query.
  decide: (() => void) | undefined;
  // Set when the command was dropped (destroy()) before its form was known.
  aborted: Error | undefined;
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

// A promise-returning method must reject, never throw, whatever the layer underneath does.
function attempt<T>(send: () => Promise<T>): Promise<T> {
  try {
    return send();
  } catch (err) {
    return Promise.reject(err);
  }
}

// What mysql2 gives a command that can no longer be sent on a closed connection.
function closedStateError(): Error {
  return Object.assign(new Error("Can't add new command when connection is in closed state"), { fatal: true });
}

// Feeds the rows of a mysql2 `Query` sent without a callback into `out`, as mysql2's
// `Query.stream()` does, and calls `done` once the query is over on the connection. Rows that
// come after `out` was destroyed (its reader left early) are read and dropped, so the
// connection is free for the next command rather than paused for good.
function pipeRows(core: CoreConnection, sql: string | QueryOptions, values: unknown, out: Readable, done: () => void): void {
  let over = false;
  const finish = () => {
    if (over) return;
    over = true;
    core.off('error', onLost);
    done();
  };
  // mysql2 tells only the connection when it is lost under a query without a callback; a
  // connection already closed refuses the query the same way, synchronously.
  const onLost = (err: Error) => {
    out.destroy(err);
    finish();
  };
  core.on('error', onLost);
  const query = core.query(sql, values);
  query.on('fields', (fields) => {
    if (!out.destroyed) out.emit('fields', fields);
  });
  query.on('result', (row, index) => {
    if (out.destroyed) return;
    if (!out.push(row)) core.pause();
    out.emit('result', row, index);
  });
  query.on('error', (err) => out.destroy(err));
  query.on('end', () => {
    finish();
    if (!out.destroyed) out.push(null);
  });
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
  /** Commands called and not yet sent, oldest first. */
  #queue: Command[] = [];
  /** A command has been sent and has not finished. */
  #running = false;
  /** `release()`, `end()` or `destroy()` was called: new commands are refused. */
  #released = false;
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
    if (this.#released) return;
    this.#released = true;
    this.#next();
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
    const command = this.#reserve();
    return new Mysql2AdapterQuery(
      () => this.#sendInTurn(command, (conn) => conn.query<T>(sql as string, values)),
      (options) => this.#stream(command, sql, values, options),
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
    return callbackOnly(callback, this.#released ? Promise.reject(new ConnectionReleasedError()) : Promise.resolve());
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
    if (this.#released) throw new ConnectionReleasedError();
    this.#released = true;
    // With nothing running, mysql2 would have sent the first command already: send it now.
    if (!this.#running) this.#queue[0]?.decide?.();
    const err = closedStateError();
    for (const command of this.#queue.splice(0)) {
      if (command.abort === undefined) command.aborted = err;
      else command.abort(err);
    }
    try {
      this.#conn.destroy();
    } finally {
      this.#next();
    }
  }

  /** Prepares a statement (mysql2's promise API); the connection is cleaned up on return. */
  prepare(options: string | QueryOptions): ReturnType<Connection['prepare']> {
    return this.#call((conn) => conn.prepare(options));
  }

  /** Drops a prepared statement from mysql2's cache, in its turn among the commands called before. */
  unprepare(sql: string | QueryOptions): void {
    const command = this.#reserve();
    if (command === undefined) throw new ConnectionReleasedError();
    this.#fill(
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

  // Takes the next place in the command order; undefined once the connection was given back.
  #reserve(): Command | undefined {
    if (this.#released) return undefined;
    const command: Command = { start: undefined, abort: undefined, decide: undefined, aborted: undefined };
    this.#queue.push(command);
    return command;
  }

  // Says how to send a reserved command; it is sent in its turn.
  #fill(command: Command, start: (done: () => void) => void, abort: (err: Error) => void): void {
    if (command.aborted !== undefined) {
      abort(command.aborted);
      return;
    }
    command.start = start;
    command.abort = abort;
    this.#next();
  }

  // Sends the commands whose turn has come, one at a time; gives the lease back once the
  // connection was released and nothing called on it is left.
  #next(): void {
    while (!this.#running) {
      const command = this.#queue[0];
      if (command === undefined) {
        if (this.#released) this.#giveBack();
        return;
      }
      // A query whose form is not known yet: decided by the end of the tick it was called in.
      if (command.start === undefined) return;
      this.#queue.shift();
      this.#running = true;
      let finished = false;
      command.start(() => {
        if (finished) return;
        finished = true;
        this.#running = false;
        this.#next();
      });
    }
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
    return this.#sendInTurn(this.#reserve(), send);
  }

  // Sends a reserved command in its turn (rejects at once when there was no place: the
  // connection was given back). The promise is the caller's alone: left unhandled, its
  // rejection is reported as mysql2's promise API's would be.
  #sendInTurn<T>(command: Command | undefined, send: (conn: PoolConnection) => Promise<T>): Promise<T> {
    if (command === undefined) return Promise.reject(new ConnectionReleasedError());
    return new Promise<T>((resolve, reject) => {
      this.#fill(
        command,
        (done) => {
          attempt(() => send(this.#conn)).then(
            (value) => {
              resolve(value);
              done();
            },
            (err: unknown) => {
              reject(err);
              done();
            },
          );
        },
        reject,
      );
    });
  }

  // A streamed query, sent in its turn: checked first as any statement is (a dead connection
  // is replaced, or a lost transaction rejects), then sent on mysql2's callback connection.
  #stream(command: Command | undefined, sql: string | QueryOptions, values: unknown, options: StreamOptions | undefined): Readable {
    // Set while the query runs: reading resumes a connection paused for a full buffer, and so
    // does leaving early, so the rest of the rows can be dropped.
    let running: CoreConnection | undefined;
    const out = new Readable({
      objectMode: true,
      highWaterMark: options?.highWaterMark ?? 16,
      read: () => running?.resume(),
      destroy: (err, callback) => {
        running?.resume();
        callback(err);
      },
    });
    if (command === undefined) {
      out.destroy(new ConnectionReleasedError());
      return out;
    }
    const lent = this.#conn as unknown as LentConnection;
    this.#fill(
      command,
      (done) => {
        attempt(() => lent.untrackedConnection()).then(
          (core) => {
            running = core as CoreConnection;
            pipeRows(running, sql, values, out, () => {
              running = undefined;
              done();
            });
          },
          (err: unknown) => {
            out.destroy(err as Error);
            done();
          },
        );
      },
      (err) => out.destroy(err),
    );
    return out;
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
 *
 * mysql2's `'connection'` event is never emitted (the pool opens and replaces connections
 * itself), so subscribing to it throws `UnsupportedOperationError` rather than leave setup code
 * that never runs: give it to `createPool` as `onConnect` or `initSql` instead.
 */
export class Mysql2PoolAdapter extends EventEmitter {
  #pool: FreshPool;
  #ended = false;

  /** Prefer `createMysql2Adapter(pool)`. */
  constructor(pool: FreshPool) {
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
export function createMysql2Adapter(pool: FreshPool): Mysql2PoolAdapter {
  return new Mysql2PoolAdapter(pool);
}
