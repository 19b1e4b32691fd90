/**
 * The per-connection record (HikariCP's PoolEntry): the connection and the times the pool's
 * decisions need. generic-pool hands only the resource to `validate`, so the times live here.
 *
 * An entry is one slot of the pool. Its connection can be swapped for a new one while it is
 * lent (a dead connection replaced before a statement), so generic-pool's loan stays valid.
 */
import type { ConnectionTimes } from './decisions.js';
import { isConnectionLevelError, serverStatusOf, SERVER_STATUS_AUTOCOMMIT, SERVER_STATUS_IN_TRANS, type DriverConnection, type StatementObserver } from './driver.js';

/** Why a connection left the pool; logged and counted. */
export type EvictReason =
  | 'closed'
  | 'closedByServer'
  | 'connectionError'
  | 'fatalError'
  | 'idleTimeout'
  | 'maxAge'
  | 'pingFailed'
  | 'pingTimeout'
  | 'rollbackFailed'
  | 'poolEnded';

/** One pooled connection and its lifetime record. Times are ms since the epoch. */
export class PoolEntry implements ConnectionTimes, StatementObserver {
  /** The mysql2 promise connection. */
  conn: DriverConnection;
  /** The server's connection id (`CONNECTION_ID()`), for logs. */
  id: number;
  /** When the connection was made, ms since the epoch. */
  createdAt: number;
  /** When the connection was made, last finished a statement or came back, ms since the epoch. */
  lastAccessAt: number;
  /** When a borrower last used it (a keep-alive ping is not use), ms since the epoch: idleTimeout counts from here. */
  lastUsedAt: number;
  /** This connection's own age limit in ms (maxAge less its jitter); 0 means none. */
  maxAgeMs: number;
  /** Set when mysql2 reports the connection ended or failed. */
  lostReason: 'closedByServer' | 'connectionError' | undefined = undefined;
  /** Why the pool is about to destroy it; read by the destroy hook for the log. */
  evictReason: EvictReason | undefined = undefined;
  /** The pool has closed the current connection (it is being replaced or destroyed). */
  closing = false;
  /** A statement failed at the connection level: destroy on return. */
  broken = false;
  /** The last OK packet said a transaction is open. */
  inTransaction = false;
  /** The last OK packet said autocommit is off: any statement may have opened a transaction. */
  autocommitOff = false;
  /** The user went around the tracked methods (prepared statements, the raw connection). */
  untracked = false;
  /** A keep-alive ping is in flight. */
  keepingAlive = false;
  /** A check before a statement in progress; concurrent statements wait for the same one. */
  freshening: Promise<void> | undefined = undefined;

  constructor(conn: DriverConnection, id: number, nowMs: number, maxAgeMs: number) {
    this.conn = conn;
    this.id = id;
    this.createdAt = nowMs;
    this.lastAccessAt = nowMs;
    this.lastUsedAt = nowMs;
    this.maxAgeMs = maxAgeMs;
  }

  /** Takes a new connection into this slot, with a fresh record. */
  adopt(conn: DriverConnection, id: number, nowMs: number, maxAgeMs: number): void {
    this.conn = conn;
    this.id = id;
    this.createdAt = nowMs;
    this.lastAccessAt = nowMs;
    this.lastUsedAt = nowMs;
    this.maxAgeMs = maxAgeMs;
    this.lostReason = undefined;
    this.evictReason = undefined;
    this.closing = false;
    this.broken = false;
    this.inTransaction = false;
    this.autocommitOff = false;
    this.untracked = false;
  }

  /**
   * Records a statement's outcome: the time, the transaction flags of its OK packet, and
   * whether its error broke the connection.
   */
  observe(err: unknown, result: unknown): void {
    this.lastAccessAt = Date.now();
    this.lastUsedAt = this.lastAccessAt;
    if (err) {
      if (isConnectionLevelError(err)) this.broken = true;
      return;
    }
    const status = serverStatusOf(result);
    if (status !== undefined) this.noteServerStatus(status);
  }

  /** Records the server status flags of an OK packet. */
  noteServerStatus(status: number): void {
    this.inTransaction = (status & SERVER_STATUS_IN_TRANS) !== 0;
    this.autocommitOff = (status & SERVER_STATUS_AUTOCOMMIT) === 0;
  }

  /** Whether a transaction may be open, as far as the tracked statements tell. */
  get mayHaveTransaction(): boolean {
    return this.inTransaction || this.autocommitOff || this.untracked;
  }
}
