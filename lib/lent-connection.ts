/**
 * The connection `withConnection` lends: mysql2's promise connection API, forwarded to the
 * entry's current connection, with three additions the pool needs:
 * - before each statement, a connection idle past `connWaitAge` (or known dead) is checked
 *   and, when dead and no transaction is open, replaced before the statement is sent;
 * - each statement's result updates the entry's record (last use, transaction flags, broken);
 * - once given back, it refuses further use, so a stale reference cannot reach a connection
 *   lent to someone else.
 */
import type { Connection, FieldPacket, QueryOptions, QueryResult } from 'mysql2/promise';
import type { StackTraces } from './config.js';
import { statement } from './driver.js';
import type { PoolEntry } from './entry.js';
import { ConnectionReleasedError } from './errors.js';
import { changesSession, statementSummary } from './session-state.js';

/** The pool's side of a lent connection. */
export interface StatementGate {
  /** Whether the entry must be checked before its next statement (no I/O). */
  needsCheck(entry: PoolEntry): boolean;
  /**
   * Makes the entry fit for a statement: pings it, or replaces a dead connection when no
   * transaction is open. Rejects with `TransactionLostError` when one was open.
   */
  freshen(entry: PoolEntry): Promise<void>;
  /** Runs the session setup again after COM_RESET_CONNECTION cleared it. */
  afterReset(entry: PoolEntry): Promise<void>;
  /** How failed statements get their stacks. */
  readonly stackTraces: StackTraces;
}

type Method = 'query' | 'execute';

/** A lent connection; typed for users as mysql2's promise `Connection`. */
export class LentConnection {
  #entry: PoolEntry;
  #gate: StatementGate;
  #lent = true;

  constructor(entry: PoolEntry, gate: StatementGate) {
    this.#entry = entry;
    this.#gate = gate;
  }

  /** Ends the loan: later calls reject with `ConnectionReleasedError`. */
  revoke(): void {
    this.#lent = false;
  }

  query<T extends QueryResult>(sql: string | QueryOptions, values?: unknown): Promise<[T, FieldPacket[]]> {
    return this.#run<T>('query', sql, values, LentConnection.prototype.query);
  }

  execute<T extends QueryResult>(sql: string | QueryOptions, values?: unknown): Promise<[T, FieldPacket[]]> {
    return this.#run<T>('execute', sql, values, LentConnection.prototype.execute);
  }

  async beginTransaction(): Promise<void> {
    await this.#run('query', 'START TRANSACTION', undefined, LentConnection.prototype.beginTransaction);
  }

  async commit(): Promise<void> {
    await this.#run('query', 'COMMIT', undefined, LentConnection.prototype.commit);
  }

  async rollback(): Promise<void> {
    await this.#run('query', 'ROLLBACK', undefined, LentConnection.prototype.rollback);
  }

  ping(): Promise<void> {
    if (!this.#lent) return Promise.reject(new ConnectionReleasedError());
    return this.#entry.conn.ping();
  }

  /** Prepared statements run outside the tracking, so the connection is cleaned up on return. */
  prepare(options: string | QueryOptions): ReturnType<Connection['prepare']> {
    if (!this.#lent) return Promise.reject(new ConnectionReleasedError());
    this.#entry.untracked = true;
    return this.#entry.conn.prepare(options);
  }

  unprepare(sql: string | QueryOptions): void {
    this.#current().unprepare(sql);
  }

  /** COM_CHANGE_USER. The connection is closed when it comes back: the next borrower gets the configured user. */
  async changeUser(options: Parameters<Connection['changeUser']>[0]): Promise<void> {
    const conn = this.#current();
    const entry = this.#entry;
    entry.untracked = true;
    entry.identityChanged = true;
    await conn.changeUser(options);
  }

  /** COM_RESET_CONNECTION: ends any transaction and clears the session; `initSql` and `onConnect` then run again. */
  async reset(): Promise<void> {
    const entry = this.#entry;
    await this.#current().reset();
    entry.sessionChangedBy = undefined;
    entry.inTransaction = false;
    entry.autocommitOff = false;
    entry.transactionUnknown = false;
    await this.#gate.afterReset(entry);
  }

  /** Closes the connection; the pool replaces it when it comes back. */
  end(): Promise<void> {
    if (!this.#lent) return Promise.reject(new ConnectionReleasedError());
    return this.#entry.conn.end();
  }

  /** Destroys the connection; the pool replaces it when it comes back. */
  destroy(): void {
    this.#current().destroy();
  }

  pause(): void {
    this.#current().pause();
  }

  resume(): void {
    this.#current().resume();
  }

  escape(value: unknown): string {
    return this.#entry.conn.escape(value);
  }

  escapeId(value: string | string[]): string {
    return this.#entry.conn.escapeId(value as string);
  }

  format(sql: string, values?: unknown): string {
    return this.#entry.conn.format(sql, values);
  }

  /**
   * The GTID of the last transaction committed on this connection (`0-1-42`), as the server
   * reported it in an OK packet; undefined unless MariaDB tracks `last_gtid` for the session
   * (`SET SESSION session_track_system_variables = ...,last_gtid`, which a cluster with
   * `readYourWrites` does). For waiting on a replica with `MASTER_GTID_WAIT`.
   */
  get lastGtid(): string | undefined {
    return this.#entry.lastGtid;
  }

  get threadId(): number {
    return this.#entry.conn.threadId;
  }

  get config(): Connection['config'] {
    return this.#entry.conn.config;
  }

  get state(): Connection['state'] {
    return this.#entry.conn.state;
  }

  /** mysql2's callback connection underneath; statements sent on it are not tracked. */
  get connection(): unknown {
    this.#entry.untracked = true;
    return (this.#current() as unknown as { connection: unknown }).connection;
  }

  /**
   * For a statement the pool cannot track (a streamed query): checks the connection as a
   * statement would (no I/O when it was used moments ago; a dead one is replaced, or
   * `TransactionLostError` when a transaction was open), then returns mysql2's callback
   * connection, marked untracked so the connection is cleaned up on return.
   */
  async untrackedConnection(): Promise<unknown> {
    if (!this.#lent) throw new ConnectionReleasedError();
    const entry = this.#entry;
    if (this.#gate.needsCheck(entry)) await this.#gate.freshen(entry);
    entry.untracked = true;
    return (entry.conn as unknown as { connection: unknown }).connection;
  }

  on(event: string, listener: (...args: unknown[]) => void): this {
    this.#current().on(event, listener);
    return this;
  }

  once(event: string, listener: (...args: unknown[]) => void): this {
    this.#current().once(event, listener);
    return this;
  }

  off(event: string, listener: (...args: unknown[]) => void): this {
    this.#entry.conn.off(event, listener);
    return this;
  }

  removeListener(event: string, listener: (...args: unknown[]) => void): this {
    return this.off(event, listener);
  }

  #current(): Connection {
    if (!this.#lent) throw new ConnectionReleasedError();
    return this.#entry.conn;
  }

  // The hot path: no promise of its own unless the connection must be checked first.
  #run<T extends QueryResult>(
    method: Method,
    sql: string | QueryOptions,
    values: unknown,
    stackFrom: (...args: never[]) => unknown,
  ): Promise<[T, FieldPacket[]]> {
    if (!this.#lent) return Promise.reject(new ConnectionReleasedError());
    if (typeof values === 'function') return Promise.reject(new Error('Callback function is not available with promise clients.'));
    const entry = this.#entry;
    const gate = this.#gate;
    if (!gate.needsCheck(entry)) {
      if (entry.sessionChangedBy === undefined) noteSessionChange(entry, sql);
      return statement(entry.conn, method, sql, values, entry, stackFrom, gate.stackTraces);
    }
    // The borrower's from now on: a return waits for it, even while its check reconnects.
    entry.awaitingCheck++;
    return gate.freshen(entry).then(
      () => {
        // Noted once checked: a swap before the statement that changes the session loses nothing.
        if (entry.sessionChangedBy === undefined) noteSessionChange(entry, sql);
        const sent = statement<[T, FieldPacket[]]>(entry.conn, method, sql, values, entry, stackFrom, gate.stackTraces);
        entry.checked(); // counted as in flight by statement() first
        return sent;
      },
      (err: unknown) => {
        entry.checked();
        throw err;
      },
    );
  }
}

function noteSessionChange(entry: PoolEntry, sql: string | QueryOptions): void {
  const text = typeof sql === 'string' ? sql : sql?.sql;
  if (typeof text === 'string' && changesSession(text)) entry.sessionChangedBy = statementSummary(text);
}
